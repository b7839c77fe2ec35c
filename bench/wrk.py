"""HTTP load with wrk: Lua scripts for a fixed batch of POSTs and for timed GET loads.

Each script reports through its `done()` hook as one `WAYBILL-RESULT {json}` line on
stdout; the latency percentiles there are wrk's own (the same histogram `--latency`
prints). Times inside the scripts come from CLOCK_MONOTONIC through LuaJIT's FFI, the
clock behind Python's `time.monotonic()`, so they line up with the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT = "WAYBILL-RESULT "
THREAD_DONE = "WAYBILL-THREAD-DONE"

# Shared by every script: a monotonic clock, the threads, and wrk's error counters.
_PRELUDE = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } waybill_timespec;
int clock_gettime(int clock_id, waybill_timespec *tp);
]]
local ts = ffi.new("waybill_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  return lines
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function errors_json(summary)
  local e = summary.errors
  return string.format(
    '{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
    e.connect, e.read, e.write, e.status, e.timeout)
end
"""

# A fixed batch: thread `tid` posts bodies tid, tid+T, tid+2T, ... once each, with the
# Idempotency-Key "<run>-<index>"; when its last answer is in it says so on stdout and
# stops (the caller then interrupts wrk). Spare connections send nothing.
_BATCH = r"""
function init(args)
  nthreads = #CFG.quota
  quota = CFG.quota[tid]
  bodies = read_lines(CFG.bodies_path)
  sent, answered, accepted, first_sent, last_answer = 0, 0, 0, 0, 0
  ids, rejected = {}, {}
end

local function nth(k)
  local n = (k - 1) * nthreads + tid
  return wrk.format(CFG.method, CFG.path, {
    ["Authorization"] = "Bearer " .. CFG.token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = CFG.run .. "-" .. n,
  }, bodies[n])
end

-- wrk 4 calls request() once in the first thread before connecting, to check the
-- script; that call must not use up a body, so it gets a copy of the first one.
local verified = false

function request()
  if tid == 1 and not verified then
    verified = true
    return nth(1)
  end
  if sent >= quota then return "" end
  sent = sent + 1
  if sent == 1 then first_sent = now() end
  return nth(sent)
end

function response(status, headers, body)
  answered = answered + 1
  last_answer = now()
  if status == CFG.expect then
    accepted = accepted + 1
    ids[#ids + 1] = string.match(body, '"id"%s*:%s*"([^"]+)"') or ""
  else
    local key = tostring(status)
    rejected[key] = (rejected[key] or 0) + 1
  end
  if answered == quota then
    io.write("WAYBILL-THREAD-DONE " .. tid .. "\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local first, last, sent_all, answered_all, accepted_all = math.huge, 0, 0, 0, 0
  local rejected_all = {}
  local out = io.open(CFG.ids_path, "w")
  for _, t in ipairs(threads) do
    if t:get("sent") > 0 then first = math.min(first, t:get("first_sent")) end
    last = math.max(last, t:get("last_answer"))
    sent_all = sent_all + t:get("sent")
    answered_all = answered_all + t:get("answered")
    accepted_all = accepted_all + t:get("accepted")
    for _, id in ipairs(t:get("ids")) do out:write(id, "\n") end
    for status, count in pairs(t:get("rejected")) do
      rejected_all[status] = (rejected_all[status] or 0) + count
    end
  end
  out:close()
  local parts = {}
  for status, count in pairs(rejected_all) do
    parts[#parts + 1] = string.format('"%s":%d', status, count)
  end
  if first == math.huge then first = 0 end
  io.write(string.format(
    'WAYBILL-RESULT {"first_sent":%.6f,"last_answer":%.6f,"sent":%d,"answered":%d,' ..
    '"accepted":%d,"rejected":{%s},"p50_us":%d,"p99_us":%d,"errors":%s}\n',
    first, last, sent_all, answered_all, accepted_all, table.concat(parts, ","),
    latency:percentile(50), latency:percentile(99), errors_json(summary)))
end
"""

# A timed GET load cycling through the paths; the threads take turns along the list.
_TIMED = r"""
function init(args)
  paths = read_lines(CFG.paths_path)
  i = 0
end

function request()
  local path = paths[(i * CFG.nthreads + tid - 1) % #paths + 1]
  i = i + 1
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. CFG.token})
end

function done(summary, latency, requests)
  io.write(string.format(
    'WAYBILL-RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"errors":%s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, errors_json(summary)))
end
"""


@dataclass(frozen=True)
class Load:
    """How hard wrk pushes: threads, open connections, and for timed loads the seconds."""

    threads: int = 2
    connections: int = 64
    seconds: float = 10.0
    timeout_seconds: float = 30.0


def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if not found:
        raise RuntimeError("wrk not found: install it (Debian/Ubuntu: apt-get install wrk)")
    return found


def _lua_string(value: str) -> str:
    level = 1
    while f"]{'=' * level}]" in value:
        level += 1
    eq = "=" * level
    return f"[{eq}[{value}]{eq}]"


def _lua_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, list | tuple):
        return "{" + ", ".join(_lua_value(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_lua_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as Lua")


def _lines_file(path: Path, lines: Sequence[str]) -> Path:
    if not lines or any("\n" in line or not line for line in lines):
        raise ValueError("wrk input lines must be non-empty and single-line")
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _script(path: Path, config: dict[str, Any], body: str) -> Path:
    path.write_text(f"CFG = {_lua_value(config)}\n{_PRELUDE}\n{body}")
    return path


async def _run(
    argv: list[str], stop_after_threads: int | None, limit_seconds: float
) -> tuple[dict[str, Any], str]:
    """Run wrk; interrupt it (SIGINT: it then reports) once `stop_after_threads` threads
    said they are done. Returns the parsed result line and wrk's whole output."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    lines: list[str] = []
    done_threads = 0
    try:
        async with asyncio.timeout(limit_seconds):
            while raw := await proc.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                lines.append(line)
                if line.startswith(THREAD_DONE):
                    done_threads += 1
                    if done_threads == stop_after_threads:
                        proc.send_signal(signal.SIGINT)
            await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    output = "\n".join(lines)
    for line in lines:
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT) :])
            return result, output
    raise RuntimeError(f"wrk gave no result (exit {proc.returncode}):\n{output[-2000:]}")


async def post_batch(
    url: str,
    path: str,
    token: str,
    bodies: Sequence[str],
    *,
    run_id: str,
    expect: int,
    load: Load,
    workdir: Path,
    limit_seconds: float,
) -> tuple[dict[str, Any], list[str]]:
    """POST every body once (Idempotency-Key `<run_id>-<n>`) over `load.connections`
    connections. Returns the result (first send and last answer on the monotonic
    clock, counts, latency) and the ids of the objects created (answers `expect`)."""
    threads = max(1, min(load.threads, len(bodies)))
    quota = [len(range(t, len(bodies), threads)) for t in range(threads)]
    ids_path = workdir / f"{run_id}-ids.txt"
    bodies_path = _lines_file(workdir / f"{run_id}-bodies.txt", bodies)
    config = {
        "method": "POST",
        "path": path,
        "token": token,
        "run": run_id,
        "expect": expect,
        "quota": quota,
        "bodies_path": str(bodies_path),
        "ids_path": str(ids_path),
    }
    script = _script(workdir / f"{run_id}-post.lua", config, _BATCH)
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{max(load.connections, threads)}",
        f"-d{int(limit_seconds)}s",
        f"--timeout={int(load.timeout_seconds)}s",
        "-s",
        str(script),
        url,
    ]
    result, output = await _run(argv, threads, limit_seconds + 30)
    result["output"] = output
    ids = [line for line in ids_path.read_text().splitlines() if line] if ids_path.exists() else []
    return result, ids


async def timed_get(
    url: str, paths: Sequence[str], token: str, *, load: Load, workdir: Path, name: str
) -> dict[str, Any]:
    """GET `paths` round-robin for `load.seconds`; requests, duration and latency."""
    config = {
        "token": token,
        "nthreads": load.threads,
        "paths_path": str(_lines_file(workdir / f"{name}-paths.txt", paths)),
    }
    script = _script(workdir / f"{name}.lua", config, _TIMED)
    argv = [
        wrk_binary(),
        f"-t{load.threads}",
        f"-c{max(load.connections, load.threads)}",
        f"-d{max(1, round(load.seconds))}s",
        f"--timeout={int(load.timeout_seconds)}s",
        "-s",
        str(script),
        url,
    ]
    result, output = await _run(argv, None, load.seconds + load.timeout_seconds + 30)
    result["output"] = output
    return result
