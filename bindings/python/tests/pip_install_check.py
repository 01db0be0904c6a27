"""ctest python_pip_install: `pip install --no-index --no-build-isolation bindings/python` into a
fresh venv (--system-site-packages, for Debian's numpy and wheel), then the installed package,
away from the repository, without RELATTN_LIBRARY or PYTHONPATH:

- relattn.__file__ and the librelattn.so it loaded are inside the venv's package folder;
- attention (causal, ALiBi with given slopes, 2 KV heads under 4 query heads) matches a numpy
  float64 reference;
- with that copy moved away (and no librelattn.so on the system), import fails with the loader's
  message naming the pip command;
- the source tree gained no build/ or relattn.egg-info; pip uninstall removes the library too.

Usage: python3 pip_install_check.py <bindings/python> <built librelattn.so>
The install copies the given library (RELATTN_LIBRARY, set for pip only): no second C++ build.
Not collected by pytest (the name does not start with test_).
"""
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHECK = r'''
import os, sys
import numpy as np
import relattn

package = os.path.dirname(os.path.abspath(relattn.__file__))
venv = os.path.realpath(sys.prefix)
assert os.path.realpath(package).startswith(venv + os.sep), (relattn.__file__, venv)
loaded = os.path.realpath(relattn._capi.lib._name)
assert loaded == os.path.realpath(os.path.join(package, "librelattn.so")), loaded

rng = np.random.default_rng(19)
n, heads, kv_heads, d = 9, 4, 2, 16
q = rng.standard_normal((n, heads, d), np.float32)
k = rng.standard_normal((n, kv_heads, d), np.float32)
v = rng.standard_normal((n, kv_heads, d), np.float32)
slopes = np.array([0.5, 0.25, 0.125, 0.0625], np.float32)
o = relattn.attention(q, k, v, scheme="alibi", causal=True, slopes=slopes)

ref = np.empty((n, heads, d))
i, j = np.arange(n)[:, None], np.arange(n)[None, :]
for h in range(heads):
    kh, vh = k[:, h // (heads // kv_heads)].astype(np.float64), v[:, h // (heads // kv_heads)]
    s = q[:, h].astype(np.float64) @ kh.T / np.sqrt(d) + float(slopes[h]) * (j - i)
    s = np.where(j <= i, s, -np.inf)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    ref[:, h] = (p / p.sum(axis=1, keepdims=True)) @ vh.astype(np.float64)
err = float(np.abs(o - ref).max())
assert o.shape == (n, heads, d) and o.dtype == np.float32 and err < 1e-5, err
print("installed relattn %s at %s (%s), max |o - ref| %.1e"
      % (relattn.__version__, package, relattn.active_target(), err))
'''


def run(command, env, cwd):
    r = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit("FAILED (%d): %s\n%s" % (r.returncode, " ".join(command), r.stdout))
    return r.stdout


def main():
    source, library = (os.path.abspath(a) for a in sys.argv[1:3])
    leftovers = [os.path.join(source, p) for p in ("build", "relattn.egg-info")]
    existing = {p for p in leftovers if os.path.exists(p)}
    scratch = tempfile.mkdtemp(prefix="relattn-pip-")  # outside the repository
    try:
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "PYTHONHOME", "RELATTN_LIBRARY")
               and not key.startswith("PIP_")}
        venv = os.path.join(scratch, "venv")
        python = os.path.join(venv, "bin", "python")
        started = time.monotonic()
        run([sys.executable, "-m", "venv", "--system-site-packages", venv], env, scratch)
        created = time.monotonic()
        pip = [python, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-input"]
        run(pip + ["install", "--no-index", "--no-build-isolation", "--no-cache-dir", source],
            dict(env, RELATTN_LIBRARY=library), scratch)
        installed = time.monotonic()
        print(run([python, "-c", CHECK], env, scratch), end="")

        copy = os.path.join(run([python, "-c", "import relattn, os; print(os.path.dirname("
                                 "relattn.__file__))"], env, scratch).strip(), "librelattn.so")
        if ctypes.util.find_library("relattn"):
            print("loader message: not checked, a librelattn.so is installed on the system")
        else:
            moved = os.path.join(scratch, "librelattn.so")  # not beside: the loader globs .so*
            shutil.move(copy, moved)
            r = subprocess.run([python, "-c", "import relattn"], env=env, cwd=scratch,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            shutil.move(moved, copy)
            assert r.returncode != 0 and "pip install --no-index --no-build-isolation" in \
                r.stdout and "bindings/python" in r.stdout, r.stdout
            print("loader message without the copy: " + r.stdout.strip().splitlines()[-1])

        new = [p for p in leftovers if os.path.exists(p) and p not in existing]
        assert not new, "the install left %s in the source tree" % new
        run(pip + ["uninstall", "-y", "relattn"], env, scratch)
        assert not os.path.exists(copy), copy + " left by pip uninstall"
        print("venv %.1f s, pip install %.1f s, all %.1f s: OK" % (
            created - started, installed - created, time.monotonic() - started))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
