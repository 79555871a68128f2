"""Run a notebook's script the way a learner runs it from a shell, and look at what it printed.

`run_script(script, *argv, cwd=...)` runs `python script argv...` in a separate process forked
from a fork server (multiprocessing's "forkserver"), a process that imported torch once and never
computes: each run then costs a fraction of a second instead of about three. Forking this test
process itself is not safe: once torch has computed here, its thread pools hold locks that a forked
child waits on for ever (seen in CI: a child asleep on a futex after the 03 tests had trained).
A run that outlives its timeout is killed and its test fails with what it printed.

The child runs the script as `__main__` with its own argv, working folder and environment, its
stdout and stderr going to files; exit codes follow Python's own rules (`SystemExit("text")` prints the text on stderr and exits 1; an uncaught exception prints its
traceback and exits 1), and the script's atexit handlers and finalizers run before it exits.

`spawn_script` starts a fresh interpreter instead (subprocess.Popen), for the tests that must see a
wholly independent process: signals, two runs at once, leftovers in the temporary folder.
"""
import atexit
import dataclasses
import io
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
import weakref


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def smoke_env(**extra):
    env = {**os.environ, "COURSE_SMOKE": "1", **extra}
    env.pop("COURSE_DATA", None) if "COURSE_DATA" not in extra else None
    return env


def _child(script, argv, cwd, env):
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [str(script), *argv]
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
    atexit._clear()  # only the script's own exit handlers run, not the test process's
    finalizers_before = set(weakref.finalize._registry)
    code = 0
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            code = 1
        else:
            code = e.code or 0
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for f in list(weakref.finalize._registry):
        if f not in finalizers_before:
            f()  # e.g. the smoke-mode temporary folder
    sys.stdout.flush()
    sys.stderr.flush()
    return code


_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(["torch", "numpy", "matplotlib"])


def _forked(script, argv, cwd, env, out_path, err_path):
    code = 1
    try:
        for fd, path in ((1, out_path), (2, err_path)):
            f = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.dup2(f, fd)
            os.close(f)
        code = _child(script, argv, cwd, env)
    finally:
        os._exit(code)


def run_script(script, *argv, cwd, env=None, timeout=300):
    """Run script with argv in a process forked from the fork server; returns Result(returncode, stdout, stderr)."""
    env = smoke_env() if env is None else env
    with tempfile.TemporaryDirectory() as folder:
        out_path, err_path = os.path.join(folder, "out"), os.path.join(folder, "err")
        for path in (out_path, err_path):
            open(path, "w").close()
        child = _SERVER.Process(target=_forked, args=(str(script), [str(a) for a in argv], str(cwd), dict(env),
                                                      out_path, err_path))
        child.start()
        child.join(timeout)
        timed_out = child.is_alive()
        if timed_out:
            child.kill()
            child.join()
        with open(out_path, errors="replace") as f:
            out = f.read()
        with open(err_path, errors="replace") as f:
            err = f.read()
        if timed_out:
            raise TimeoutError(f"{script} {' '.join(map(str, argv))} ran past {timeout} s; it printed:\n{out}\n{err}")
        return Result(child.exitcode, out, err)


def spawn_script(script, *argv, cwd, env=None, **popen):
    """Start `python script argv...` in a fresh interpreter (subprocess.Popen, text mode)."""
    env = smoke_env() if env is None else env
    return subprocess.Popen([sys.executable, str(script), *map(str, argv)], cwd=cwd, env=env, text=True, **popen)


def one_line_error(result):
    """The single 'error: ...' line a refused command printed; fails if there is anything else."""
    assert result.returncode not in (0, 130), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
