"""Conan 2 recipe for multiproc, a header-only C++20 library.

From a checkout: `conan create conan/ --build=missing` (see docs/packaging.md). The version is
read from project(VERSION) in the top-level CMakeLists.txt, so it is never written twice.
"""
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class MultiprocConan(ConanFile):
    name = "multiproc"
    description = "Python's multiprocessing for C++20, assembled at compile time from policies"
    topics = ("multiprocessing", "process", "pool", "ipc", "header-only")
    homepage = "https://example.invalid/multiproc"
    license = "BSL-1.0"
    package_type = "header-library"
    # Settings are declared only so that validate() can check them; package_id() drops them:
    # one package serves every configuration.
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True
    # Boost is used for header-only libraries (Hana, Interprocess, PFR): no compiled Boost.
    # A consumer that needs compiled Boost may override this with -o boost/*:header_only=False.
    default_options = {"boost/*:header_only": True}

    @property
    def _checkout(self):
        return os.path.join(self.recipe_folder, os.pardir)

    def set_version(self):
        if self.version:  # `conan create --version=...` wins
            return
        cmakelists = load(self, os.path.join(self._checkout, "CMakeLists.txt"))
        found = re.search(r"project\(\s*multiproc\s+VERSION\s+([0-9]+\.[0-9]+\.[0-9]+)", cmakelists)
        if not found:
            raise ConanInvalidConfiguration("multiproc: no project(multiproc VERSION x.y.z) in CMakeLists.txt")
        self.version = found.group(1)

    def export_sources(self):
        # The recipe lives in conan/, the headers one level up.
        copy(self, "include/*", self._checkout, self.export_sources_folder)
        copy(self, "LICENSE*", self._checkout, self.export_sources_folder)

    def layout(self):
        basic_layout(self)

    def requirements(self):
        # Being a header-library, these reach consumers' include paths transitively.
        self.requires("boost/[>=1.81.0 <2]")
        self.requires("range-v3/[>=0.12.0 <1]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, "20")
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration(f"multiproc: {self.settings.os} is not supported: "
                                            "it relies on fork, pidfd, futex and memfd (Linux only)")

    def package(self):
        copy(self, "LICENSE*", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # The same names the CMake install rules export: find_package(multiproc) and
        # multiproc::multiproc, and multiproc.pc for pkg-config users.
        self.cpp_info.set_property("cmake_file_name", "multiproc")
        self.cpp_info.set_property("cmake_target_name", "multiproc::multiproc")
        self.cpp_info.set_property("pkg_config_name", "multiproc")
        self.cpp_info.requires = ["boost::headers", "range-v3::range-v3"]
        self.cpp_info.system_libs = ["pthread", "rt"]
