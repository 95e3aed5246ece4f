"""Conan 2 recipe for multiproc, a header-only C++20 library (docs/packaging.md).

Where the sources come from:
- development: `conan create conan/` packages the checkout around this recipe, at the
  version project(VERSION) states in the top-level CMakeLists.txt;
- a release: `conan create conan/ --version=X`, X listed under `sources` in conandata.yml,
  downloads that release's archive and checks its sha256, as a recipe in a recipe index
  does. (Any other --version packages the checkout under that version.)
"""
import os
import re

from conan import ConanFile
from conan.errors import ConanException, ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, get, load
from conan.tools.gnu import PkgConfig
from conan.tools.layout import basic_layout
from conan.tools.scm import Version

required_conan_version = ">=2.0.9"


class MultiprocConan(ConanFile):
    name = "multiproc"
    description = "Python's multiprocessing for C++20, assembled at compile time from policies"
    license = "BSL-1.0"
    # Where this recipe lives, and the project's home: the same repository. Keep both equal to
    # HOMEPAGE_URL in CMakeLists.txt (checked by ctest).
    url = "https://example.invalid/multiproc"
    homepage = "https://example.invalid/multiproc"
    topics = ("multiprocessing", "process", "pool", "ipc", "header-only")
    package_type = "header-library"
    # Declared for validate() only; package_id() drops them: one package fits every configuration.
    settings = "os", "arch", "compiler", "build_type"
    # with_mpi: the component multiproc::mpi for <multiproc/ext/start/mpi.hpp>, on the MPI of
    # the system, found with pkg-config (docs/packaging.md, "MPI"). Off: no MPI anywhere.
    options = {"with_mpi": [True, False]}
    default_options = {"with_mpi": False}
    no_copy_source = True
    _from_archive = False  # set by set_version()

    @property
    def _min_cppstd(self):
        return 20

    @property
    def _compilers_minimum_version(self):
        # The oldest compilers multiproc is built and tested with (README: GCC 12, Clang 14).
        return {"gcc": "12", "clang": "14"}

    @property
    def _checkout(self):
        return os.path.join(self.recipe_folder, os.pardir)

    @property
    def _release(self):
        """conandata.yml's entry (url, sha256) for this version, if it is a release."""
        return ((self.conan_data or {}).get("sources") or {}).get(str(self.version))

    def set_version(self):
        # Only here is it known whether --version named the version: a named release is
        # built from its archive, anything else from the checkout.
        self._from_archive = bool(self.version) and self._release is not None
        if self.version:
            return
        cmakelists = os.path.join(self._checkout, "CMakeLists.txt")
        if not os.path.isfile(cmakelists):
            raise ConanException("multiproc: this recipe is not in a checkout (no ../CMakeLists.txt): "
                                 "name a release listed in conandata.yml with --version")
        found = re.search(r"project\(\s*multiproc\s+VERSION\s+([0-9]+\.[0-9]+\.[0-9]+)", load(self, cmakelists))
        if not found:
            raise ConanException("multiproc: no project(multiproc VERSION x.y.z) in CMakeLists.txt")
        self.version = found.group(1)

    def export_sources(self):
        if self._from_archive:
            return  # source() downloads it
        if not os.path.isdir(os.path.join(self._checkout, "include", "multiproc")):
            raise ConanException(f"multiproc: {self.version} is not a release listed in conandata.yml, and "
                                 "this recipe is not in a checkout to package instead")
        # The recipe lives in conan/, the headers one level up. Copying them to the cache
        # writes nothing into the checkout.
        copy(self, "include/*", self._checkout, self.export_sources_folder)
        copy(self, "LICENSE", self._checkout, self.export_sources_folder)

    def layout(self):
        basic_layout(self)

    def requirements(self):
        # Exact versions, as ConanCenter asks; the oldest that multiproc supports. Being a
        # header library, it passes their headers on to its consumers.
        self.requires("boost/1.81.0", transitive_headers=True)
        self.requires("range-v3/0.12.0", transitive_headers=True)

    def package_id(self):
        self.info.clear()  # (the option only changes package_info(), which runs for the consumer)

    def validate(self):
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration(f"multiproc: {self.settings.os} is not supported: "
                                            "it relies on fork, pidfd, futex and memfd (Linux only)")
        if self.settings.compiler.get_safe("cppstd"):
            check_min_cppstd(self, self._min_cppstd)
        compiler = str(self.settings.compiler)
        minimum = self._compilers_minimum_version.get(compiler)
        if minimum is None:
            self.output.warning(f"multiproc: {compiler} is not one multiproc is tested with; "
                                f"assuming it supports C++{self._min_cppstd}")
        elif Version(self.settings.compiler.version) < minimum:
            raise ConanInvalidConfiguration(f"multiproc: {compiler} {self.settings.compiler.version} is too old: "
                                            f"it needs {compiler} {minimum} or later (C++{self._min_cppstd})")

    def source(self):
        if os.path.isdir(os.path.join(self.source_folder, "include", "multiproc")):
            return  # exported from the checkout
        release = self._release
        if release is None:
            raise ConanException(f"multiproc: no sources for {self.version}: not in conandata.yml")
        self.output.info(f"multiproc: sources of release {self.version} from {release['url']}")
        get(self, **release, strip_root=True)

    def build(self):
        pass  # header-only: nothing to build

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def _packaged(self, name):
        """Whether dependency `name` is a package (not one of the system's, [platform_requires])."""
        for require, dependency in self.dependencies.host.items():
            if require.ref.name == name:
                return dependency.package_folder is not None
        return False

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # The names the CMake install exports: find_package(multiproc) and multiproc::multiproc,
        # and multiproc.pc for PkgConfigDeps users.
        self.cpp_info.set_property("cmake_file_name", "multiproc")
        if not self.options.with_mpi:
            self.cpp_info.set_property("cmake_target_name", "multiproc::multiproc")
            self.cpp_info.set_property("pkg_config_name", "multiproc")
            self.cpp_info.requires = ["boost::headers", "range-v3::range-v3"]
            self.cpp_info.system_libs = ["pthread", "rt"]
            return
        # Two components, as the CMake install has them: multiproc::multiproc, and
        # multiproc::mpi, which adds the system's MPI (its pkg-config module: Open MPI's
        # ompi-c, or the generic mpi-c of Debian's alternatives). The root target, which
        # CMakeDeps makes of every component, gets a name of its own.
        self.cpp_info.set_property("cmake_target_name", "multiproc::multiproc_all")
        core = self.cpp_info.components["multiproc"]
        core.set_property("cmake_target_name", "multiproc::multiproc")
        core.set_property("pkg_config_name", "multiproc")
        # (A component may name only packages in the graph: a dependency the profile takes from
        # the system, [platform_requires], has no package, and its headers are the system's.)
        core.requires = [r for r in ("boost::headers", "range-v3::range-v3") if self._packaged(r.split("::")[0])]
        core.system_libs = ["pthread", "rt"]
        core.bindirs = []
        core.libdirs = []
        mpi = self.cpp_info.components["mpi"]
        mpi.set_property("cmake_target_name", "multiproc::mpi")
        mpi.set_property("pkg_config_name", "multiproc-mpi")
        mpi.requires = ["multiproc"]
        for module in ("ompi-c", "mpi-c"):
            found = PkgConfig(self, module)
            try:
                found.fill_cpp_info(mpi, is_system=True)
            except ConanException:
                continue
            mpi.bindirs = []
            mpi.defines = list(mpi.defines) + ["OMPI_SKIP_MPICXX=1"]
            return
        raise ConanException("multiproc: with_mpi needs an MPI whose pkg-config module (ompi-c or mpi-c) "
                             "pkg-config can find (Debian: apt-get install libopenmpi-dev pkg-config)")
