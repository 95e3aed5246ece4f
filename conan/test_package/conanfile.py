"""Conan 2 test of the multiproc package: builds and runs a program that uses it."""
import os
import tempfile

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import rmdir


class MultiprocTestPackageConan(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    test_type = "explicit"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        # Built outside the checkout, so that `conan create conan/` leaves no file in it
        # (unless tools.cmake.cmake_layout:test_folder says where); removed after the test.
        self._temporary = None
        if not self.conf.get("tools.cmake.cmake_layout:test_folder"):
            self._temporary = tempfile.mkdtemp(prefix="multiproc-test_package-")
        cmake_layout(self, build_folder=self._temporary or "build")

    def generate(self):
        CMakeDeps(self).generate()
        toolchain = CMakeToolchain(self)
        toolchain.user_presets_path = False  # no CMakeUserPresets.json in conan/test_package
        toolchain.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        if can_run(self):
            self.run(os.path.join(self.cpp.build.bindir, "test_package"), env="conanrun")
        if self._temporary:
            rmdir(self, self._temporary)
