"""Runs every method of conan/conanfile.py against a stand-in for the parts of the Conan 2 API
it uses, since Conan itself cannot be installed where the tests run. The stand-in keeps to
the documented behaviour (copy() matches fnmatch patterns against paths relative to src,
check_min_cppstd() raises ConanInvalidConfiguration), so this catches what compiling cannot:
misspelt names, a version the recipe cannot find in CMakeLists.txt, patterns that package no
header, and package_info() drifting from the CMake package's names.

usage: conan_recipe.py <checkout> <project version>
"""
import fnmatch
import os
import shutil
import sys
import tempfile
import types

checkout, expected_version = sys.argv[1], sys.argv[2]


class ConanInvalidConfiguration(Exception):
    pass


class ConanFile:
    def requires(self, ref):
        self.required.append(ref)


def copy(conanfile, pattern, src, dst):
    copied = []
    for root, _, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), src)
            if fnmatch.fnmatch(rel, pattern):
                os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
                shutil.copy2(os.path.join(src, rel), os.path.join(dst, rel))
                copied.append(rel)
    return copied


def load(conanfile, path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def check_min_cppstd(conanfile, cppstd):
    if int(conanfile.settings.compiler.cppstd.lstrip("gnu")) < int(cppstd):
        raise ConanInvalidConfiguration(f"requires C++{cppstd}")


def module(name, **members):
    m = types.ModuleType(name)
    m.__dict__.update(members)
    sys.modules[name] = m


module("conan", ConanFile=ConanFile)
module("conan.errors", ConanInvalidConfiguration=ConanInvalidConfiguration)
module("conan.tools")
module("conan.tools.build", check_min_cppstd=check_min_cppstd)
module("conan.tools.files", copy=copy, load=load)
module("conan.tools.layout", basic_layout=lambda conanfile: None)

recipe_path = os.path.join(checkout, "conan", "conanfile.py")
namespace = {}
exec(compile(load(None, recipe_path), recipe_path, "exec"), namespace)
recipe = namespace["MultiprocConan"]()
ns = types.SimpleNamespace
recipe.recipe_folder = os.path.join(checkout, "conan")
recipe.version = None
recipe.required = []
recipe.info = ns(clear=lambda: None)

recipe.set_version()
assert recipe.version == expected_version, f"recipe version {recipe.version}, project {expected_version}"

recipe.requirements()
assert sorted(r.split("/")[0] for r in recipe.required) == ["boost", "range-v3"], recipe.required
assert recipe.package_type == "header-library"
recipe.layout()
recipe.package_id()


def validates(os_name, cppstd):
    recipe.settings = ns(os=os_name, compiler=ns(cppstd=cppstd))
    try:
        recipe.validate()
        return True
    except ConanInvalidConfiguration:
        return False


assert validates("Linux", "20") and validates("Linux", "gnu23")
assert not validates("Linux", "17"), "C++17 must be rejected"
assert not validates("Windows", "20"), "only Linux is supported"

with tempfile.TemporaryDirectory() as tmp:
    recipe.export_sources_folder = recipe.source_folder = os.path.join(tmp, "src")
    recipe.package_folder = os.path.join(tmp, "package")
    recipe.export_sources()
    recipe.package()
    for header in ("multiproc/process.hpp", "multiproc/version.hpp", "multiproc/policies/start.hpp"):
        assert os.path.isfile(os.path.join(recipe.package_folder, "include", header)), f"{header} not packaged"


class CppInfo:
    def __init__(self):
        self.properties = {}

    def set_property(self, name, value):
        self.properties[name] = value


recipe.cpp_info = CppInfo()
recipe.package_info()
info = recipe.cpp_info
assert info.properties["cmake_file_name"] == "multiproc"
assert info.properties["cmake_target_name"] == "multiproc::multiproc"
assert info.properties["pkg_config_name"] == "multiproc"
assert sorted(info.system_libs) == ["pthread", "rt"]
assert sorted(info.requires) == ["boost::headers", "range-v3::range-v3"]
assert info.libdirs == [] and info.bindirs == []
print(f"conan/conanfile.py: multiproc/{recipe.version}, every method ran")
