"""Builds the relattn wheel with librelattn.so inside the package, beside __init__.py, where
relattn/_capi.py looks for "a copy beside this package". pyproject.toml holds the metadata.

    pip install --no-index --no-build-isolation ./bindings/python     # in a venv (README)

The library is $RELATTN_LIBRARY when set (copied; its version must be this tree's), else built
here: CMake on the repository (../..) into a temporary folder, target relattn_shared, Release,
without the tests, bench and bindings (cmake on PATH or $CMAKE; $CMAKE_BUILD_PARALLEL_LEVEL jobs,
default all CPUs). setuptools' build/ and relattn.egg-info go to a temporary folder too, so the
source tree is left as it was and concurrent installs do not share files.
"""
import atexit
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LIBRARY_NAME = "librelattn.so"


def fail(message):
    sys.exit("relattn setup.py: " + message)


def cmake_version():
    """The C library's version: project(relattn VERSION x.y.z) in the repository's CMakeLists."""
    path = os.path.join(REPO, "CMakeLists.txt")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        fail("%s not found: install from bindings/python inside the relattn repository" % path)
    m = re.search(r"project\(\s*relattn\s+VERSION\s+([0-9][0-9.]*)", text)
    if not m:
        fail("no project(relattn VERSION ...) in " + path)
    return m.group(1)


VERSION = cmake_version()
SCRATCH = tempfile.mkdtemp(prefix="relattn-setup-")
atexit.register(shutil.rmtree, SCRATCH, True)


def given_library(path):
    """$RELATTN_LIBRARY, checked: it loads and its version is this tree's."""
    if not os.path.isfile(path):
        fail("RELATTN_LIBRARY=%s is not a file%s" % (path, "" if os.path.isabs(path) else
             " (a relative path is read from pip's build folder, %s: give an absolute one)"
             % os.getcwd()))
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
    except OSError as e:
        fail("RELATTN_LIBRARY=%s does not load: %s" % (path, e))
    lib.relattn_version_string.restype = ctypes.c_char_p
    found = lib.relattn_version_string().decode()
    if found != VERSION:
        fail("RELATTN_LIBRARY=%s is relattn %s, this tree is %s (its ctypes mirror matches %s's "
             "relattn.h): rebuild it, or unset RELATTN_LIBRARY to build it here"
             % (path, found, VERSION, VERSION))
    return path


def built_library():
    """Builds librelattn.so with CMake from the repository into a temporary folder."""
    cmake = os.environ.get("CMAKE", "cmake")
    if shutil.which(cmake) is None:
        fail("cmake not found (apt-get install cmake, or set CMAKE), nor RELATTN_LIBRARY set to "
             "a built librelattn.so")
    build = os.path.join(SCRATCH, "cmake")
    configure = [cmake, "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                 "-DRELATTN_BUILD_TESTS=OFF", "-DRELATTN_BUILD_BENCH=OFF",
                 "-DRELATTN_BUILD_PORTS=OFF"]
    compile_ = [cmake, "--build", build, "--target", "relattn_shared"]
    if not os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL"):
        compile_ += ["-j", str(os.cpu_count() or 1)]
    for command in (configure, compile_):
        print("relattn setup.py: " + " ".join(command), flush=True)
        if subprocess.call(command) != 0:
            fail("failed: " + " ".join(command))
    path = os.path.join(build, LIBRARY_NAME)
    if not os.path.isfile(path):
        fail("the CMake build left no " + path)
    return path


class BuildPyWithLibrary(build_py):
    """build_py, then librelattn.so (the file a symlink names, as one file) into the package."""

    def run(self):
        super().run()
        env = os.environ.get("RELATTN_LIBRARY")
        source = given_library(env) if env else built_library()
        target = os.path.join(self.build_lib, "relattn", LIBRARY_NAME)
        print("relattn setup.py: %s -> %s" % (source, target), flush=True)
        shutil.copyfile(source, target)  # follows librelattn.so -> .so.0.2 -> .so.0.2.0
        shutil.copymode(source, target)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, "relattn", LIBRARY_NAME)]


class BinaryDistribution(Distribution):
    """Holds a native library: a platform wheel, installed into platlib."""

    def has_ext_modules(self):
        return True


commands = {"build_py": BuildPyWithLibrary}
try:
    from wheel.bdist_wheel import bdist_wheel

    class BdistWheel(bdist_wheel):
        """py3-none-<platform>: no extension module, so any Python 3 on this platform."""

        def get_tag(self):
            return ("py3", "none") + tuple(super().get_tag()[2:])

    commands["bdist_wheel"] = BdistWheel
except ImportError:
    if {"bdist_wheel", "dist_info", "editable_wheel"} & set(sys.argv):
        fail("no wheel module in %s: apt-get install python3-wheel, and make the venv with "
             "--system-site-packages (or pip install wheel where there is an index)"
             % sys.executable)

setup(version=VERSION, packages=["relattn"], cmdclass=commands, distclass=BinaryDistribution,
      options={"build": {"build_base": os.path.join(SCRATCH, "build")},
               "egg_info": {"egg_base": SCRATCH}})
