"""Run a notebook's script the way a learner runs it from a shell, and look at what it printed.

`run_script(script, *argv, cwd=...)` runs `python script argv...` in a separate process made by
forking this test process, which has imported torch already: each run then costs a fraction of a
second instead of about three. The child runs the script as `__main__` with its own argv, working
folder and environment, its stdout and stderr going to files; exit codes follow Python's own rules
(`SystemExit("text")` prints the text on stderr and exits 1; an uncaught exception prints its
traceback and exits 1), and the script's atexit handlers and finalizers run before it exits.

`spawn_script` starts a fresh interpreter instead (subprocess.Popen), for the tests that must see a
wholly independent process: signals, two runs at once, leftovers in the temporary folder.
"""
import atexit
import dataclasses
import io
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
    for name in [m for m in sys.modules if m == "ipykernel" or m.startswith("ipykernel.")]:
        del sys.modules[name]  # a script run from a shell has no Jupyter kernel (pytest's nbval imports one)
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


def run_script(script, *argv, cwd, env=None, timeout=300):
    """Run script with argv in a forked process; returns Result(returncode, stdout, stderr)."""
    env = smoke_env() if env is None else env
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                code = _child(script, [str(a) for a in argv], cwd, env)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return Result(os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode())


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
