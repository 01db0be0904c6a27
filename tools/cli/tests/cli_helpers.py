"""What the tool's test files share: the tool ($RELATTN_CLI), running it, and .npy inputs."""
import os
import subprocess

import numpy as np

CLI = os.environ.get("RELATTN_CLI", "relattn")


def run(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=60)


def ok(*args):
    """Runs the tool, which must succeed; returns its stdout."""
    result = run(*args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def fails(status, text, *args):
    """Runs the tool, which must fail with status and one stderr line containing text."""
    result = run(*args)
    assert result.returncode == status, (args, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr, result.stderr
    return result


def save(folder, **arrays):
    """Saves each array as folder/NAME.npy; returns {name: path}."""
    paths = {}
    for name, a in arrays.items():
        paths[name] = folder / (name + ".npy")
        np.save(paths[name], a)
    return paths


def flags(folder, **options):
    """The tool's options for the binding's keyword arguments: arrays saved in folder and
    passed as files, True as a switch, False left out, anything else as its value."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, np.ndarray):
            args += [flag, save(folder, **{key: value})[key]]
        elif value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, value]
    return args
