"""Long fuzzing runs of the parsers that read untrusted bytes: AMI frames, FastAGI, the debt (`csv`) and
client-base (`clients`) CSV imports.

Coverage-guided with atheris (libFuzzer), seeded with the recorded traces in ../shared/ami-traces
(and sample debt files). Every target checks more than "does not raise": only the documented error
types may escape (none from the AMI parser, AgiError from FastAGI, ImportFileError from the CSV
import); AMI and FastAGI bytes fed in one read and in random pieces (or a byte at a time) must give
the same result, and the AMI parser must never hold more than one frame's worth; every accepted
debt or client row must obey the documented rules and the rejected-rows report must stay formula-safe. A case
running longer than `--timeout` seconds is a hang: libFuzzer stops and writes the input to var/fuzz/.

Each target runs in its own libFuzzer child process (libFuzzer ends its process at the end of a
run or at the first crash); this parent prints cases/s, totals and any crash. Needs atheris:
`.venv/bin/pip install atheris` (Linux x86_64 wheels for Python 3.11).

    .venv/bin/python bench/fuzz.py ami agi csv clients --cases 1000000
    .venv/bin/python bench/fuzz.py ami --replay var/fuzz/ami-crash-<sha1>
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT.parent / "shared" / "ami-traces"
ARTIFACTS = ROOT / "var" / "fuzz"
TARGETS = ("ami", "agi", "csv", "clients")
CONTROL = 8  # leading bytes of a case that choose limits and read boundaries; the rest is the stream

# Tokens the mutator may splice in (libFuzzer -dict), so short runs reach the protocol paths.
TOKENS = [b"\r\n", b"\r\n\r\n", b"\n\n", b"\r", b": ", b"Event: ", b"Response: Success", b"ActionID: ",
          b"Asterisk Call Manager/6.0.0", b"ChanVariable(PJSIP/1-1): A=1", b"\xd0\x98", b"\xe2\x98\x8e",
          b"agi_request: ", b"agi_", b"200 result=", b" endpos=", b" (", b")", b"HANGUP", b"520-",
          b"520 End of proper usage.", b"511 ", b"510 ", b"\xef\xbb\xbf", b";", b",", b'"', b'""', b"\t"]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in zip(edges, edges[1:], strict=False)]


def pieces_for(control: bytes, data: bytes) -> tuple[random.Random, list[bytes]]:
    """The case's own random source and its read boundaries: random cuts, in one case of eight also
    a byte per read over a random stretch of up to 256 bytes (all of it would cost ~5 us a byte)."""
    rng = random.Random(control)
    cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 24))]
    if control[1:2] >= b"\xe0":
        start = rng.randrange(len(data) + 1)
        cuts += range(start, min(start + 256, len(data)))
    return rng, split(data, cuts)


# --- AMI frame parser ------------------------------------------------------------------------

def ami_target() -> Callable[[bytes], None]:
    from ami_bridge.frames import FrameParser

    def run(pieces: list[bytes], limits: dict[str, int]) -> tuple[object, ...]:
        parser = FrameParser(**limits)
        bound = parser.max_frame + 1  # the frame so far, and maybe the first LF of its ending blank line
        seen = []
        for piece in pieces:
            for msg in parser.feed(piece):
                if not msg.headers:
                    raise AssertionError("a message without headers")
                seen.append((msg.headers, msg.event, msg.response, msg.action_id, msg.variables()))
            if sum(map(len, parser._parts)) > bound:
                raise AssertionError(f"the parser holds more than {bound} characters")
        return seen, parser.banner

    def case(data: bytes) -> None:
        control, stream = data[:CONTROL], data[CONTROL:]
        rng, pieces = pieces_for(control, stream)
        limits = {"max_line": rng.randint(1, 300), "max_frame": rng.randint(1, 1200)} if control[:1] >= b"\x80" else {}
        whole = run([stream], limits)
        if run(pieces, limits) != whole:
            raise AssertionError(f"reads {[len(p) for p in pieces]} parse differently from one read")

    return case


def ami_seeds() -> list[bytes]:
    """Each recording in runs of whole frames under 4 kB, with default and with small limits."""
    seeds = []
    for trace in sorted(TRACES.glob("*.ami")):
        run = b""
        for frame in trace.read_bytes().split(b"\r\n\r\n"):
            if run and len(run) + len(frame) > 4000:
                seeds.append(run)
                run = b""
            run += frame + b"\r\n\r\n"
        seeds.append(run)
    return [control + seed for seed in seeds for control in (bytes(CONTROL), b"\x90" + bytes(CONTROL - 1))]


# --- FastAGI reader --------------------------------------------------------------------------

class _Sink:
    """The server's side of the socket: what the channel writes is not under test."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


def agi_target() -> Callable[[bytes], None]:
    from ivr.agi import MAX_ENV_LINES, AgiChannel, AgiEnvironment, AgiError, read_environment

    async def session(pieces: list[bytes], limit: int) -> list[object]:
        """Pieces arrive one loop turn apart; the environment, then NOOPs until the channel errors."""
        reader = asyncio.StreamReader(limit=limit)

        async def feed() -> None:
            for piece in pieces:
                reader.feed_data(piece)
                await asyncio.sleep(0)
            reader.feed_eof()

        async def read() -> list[object]:
            try:
                env = await read_environment(reader, timeout=5)
            except AgiError as exc:
                return [(type(exc).__name__, str(exc))]
            agi = AgiChannel(reader, _Sink(), env, reply_timeout=5)  # type: ignore[arg-type]
            seen: list[object] = [env]
            while True:
                try:
                    seen.append(await agi.command("NOOP"))
                except AgiError as exc:
                    return [*seen, (type(exc).__name__, str(exc), agi.hung_up)]

        feeder = asyncio.create_task(feed())
        try:
            seen = await asyncio.wait_for(read(), 5)
        finally:
            await feeder
        env = seen[0]
        if isinstance(env, AgiEnvironment) and len(env.variables) + len(env.garbage) > MAX_ENV_LINES:
            raise AssertionError("more environment lines than MAX_ENV_LINES were kept")
        return seen

    loop = asyncio.new_event_loop()

    def case(data: bytes) -> None:
        control, stream = data[:CONTROL], data[CONTROL:]
        _, pieces = pieces_for(control, stream)
        limit = (2 ** 16, 64, 200)[control[0] % 3] if control else 2 ** 16
        whole = loop.run_until_complete(session([stream], limit))
        if loop.run_until_complete(session(pieces, limit)) != whole:
            raise AssertionError(f"reads {[len(p) for p in pieces]} give another session than one read")

    return case


def agi_seeds() -> list[bytes]:
    """What Asterisk sent in the recorded session (environment, then replies), plus the odd replies."""
    sent = b"".join(line[4:] + b"\n" for line in (TRACES / "ivr_fastagi.fastagi.txt").read_bytes().split(b"\n")
                    if line.startswith(b"<<< "))
    env, _, replies = sent.partition(b"\n\n")
    odd = (b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
           b"520-Invalid command syntax.  Proper usage follows:\nUsage: NOOP\n520 End of proper usage.\n"
           b"200 result=1 (8 (351) 123-45-67) endpos=8000\n510 Invalid or unknown command\n")
    streams = [sent, sent.replace(b"\n", b"\r\n"), env + b"\n\n" + odd, env[:200]]
    return [bytes([c]) + bytes(CONTROL - 1) + s for s in streams for c in range(3)]


# --- CSV imports: debts (csv) and the client base (clients) -------------------------------

def csv_case(parse: Callable[[str], Iterable[Any]], key: str, key_of: Callable[[Any], object],
             keeps_rules: Callable[[Any], bool]) -> Callable[[bytes], None]:
    """A case for one CSV import's parser: only ImportFileError escapes, rows come in file order, no
    key twice, every refusal is worded, every accepted row `keeps_rules`, and the rejected-rows report
    (its key column titled by the message `key`) is formula-safe. The first byte picks the language."""
    from crm_core.csv_import import ImportFileError, RowError, decode_csv, rejected_csv

    def check(items: list[Any], lang: str) -> None:
        lines = [item.line for item in items]
        if lines != sorted(set(lines)):
            raise AssertionError(f"row lines out of order: {lines}")
        keys = [key_of(row) for row in items if not isinstance(row, RowError) and key_of(row) is not None]
        if len(keys) != len(set(keys)):
            raise AssertionError("a row's key was accepted twice")
        for row in items:
            if isinstance(row, RowError):
                if not row.reasons or not row.text(lang):
                    raise AssertionError(f"a rejected row without a reason: {row}")
                continue
            for warning in row.warnings:
                warning.text(lang)
            if not keeps_rules(row):
                raise AssertionError(f"an accepted row breaks the documented rules: {row}")
        rejected = [row for row in items if isinstance(row, RowError)]
        report = list(csv.reader(io.StringIO(rejected_csv(rejected, key, lang).decode("utf-8-sig"), newline="")))
        if len(report) != len(rejected) + 1:
            raise AssertionError(f"the rejected-rows report has {len(report)} rows for {len(rejected)}")
        if any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for line in report for cell in line):
            raise AssertionError("a report cell would run as a spreadsheet formula")

    def case(data: bytes) -> None:
        lang = "ru" if data[:1] >= b"\x80" else "en"
        try:
            text, _ = decode_csv(data[1:])
            items = list(parse(text))
        except ImportFileError as exc:
            exc.text(lang)
            return
        check(items, lang)

    return case


def csv_files(rows: list[list[str]]) -> list[bytes]:
    """The rows as Excel may save them: each delimiter and encoding, with either language byte first."""
    seeds = []
    for delimiter in (";", ",", "\t"):
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
        text = out.getvalue()
        for encoding in ("utf-8", "utf-8-sig", "utf-16", "cp1251"):
            seeds += [lang + text.encode(encoding) for lang in (b"\x00", b"\x80")]
    return seeds


def _e164(phones: Iterable[str]) -> bool:
    return all(re.fullmatch(r"\+[0-9]{8,15}", phone) for phone in phones)


def csv_target() -> Callable[[bytes], None]:
    from datetime import date

    from crm_core.debt_import import MAX_AMOUNT, MAX_DAYS, parse_rows

    today = date(2026, 11, 23)
    return csv_case(lambda text: parse_rows(text, "RU", today), "col.contract", lambda row: row.contract,
                    lambda row: (0 < len(row.contract) <= 64 and row.phones and row.currency.isalpha()
                                 and _e164(row.phones) and 0 <= row.principal < MAX_AMOUNT
                                 and 0 < row.total_due < MAX_AMOUNT and 0 <= row.days_past_due <= MAX_DAYS))


def csv_seeds() -> list[bytes]:
    """A valid file in each encoding and delimiter the import reads, and one with every kind of bad row."""
    rows = [
        ["contract", "creditor", "debtor", "kind", "region", "phones", "principal", "total_due", "currency",
         "days_past_due", "due_date", "status", "email"],
        ["КД-001", "ПАО «Банк»", "Иванов Иван Иванович", "person", "Москва", "+7 916 123-45-67; 8 (343) 222-33-44",
         "12 500,50", "13000", "RUB", "45", "", "active", "ivanov@example.ru"],
        ["КД-002", "ПАО «Банк»", "ООО «Вектор»", "company", "66", "89161234568", "0", "100.5", "", "",
         "01.10.2026", "promised", ""],
        ["КД-003", "Bank", "=HYPERLINK(\"x\")", "alien", "Марс", "12", "-5", "0", "rubles", "99999", "31.02.2026",
         "lost", "not-an-email"],
        ["КД-001", "", "", "", "", "", "", "", "", "", "2030-01-01", "", ""],
    ]
    broken = rows[0][:3] + ['"unclosed;quote']
    return [*csv_files(rows), b"\x00" + ";".join(broken).encode() + b"\nx;y;z\n"]


# --- client-base CSV import ------------------------------------------------------------------

def clients_target() -> Callable[[bytes], None]:
    from crm_core.client_import import LIMITS, SEGMENTS, parse_rows

    return csv_case(lambda text: parse_rows(text, "RU"), "col.name", lambda row: row.client_id,
                    lambda row: (0 < len(row.name) <= LIMITS["name"] and (row.phones or row.email)
                                 and row.kind in ("", "person", "company") and _e164(row.phones)
                                 and (row.segment in SEGMENTS or not row.segment or row.warnings)))


def clients_seeds() -> list[bytes]:
    """callcard's own export and an old CRM's file in each encoding and delimiter, with bad rows."""
    rows = [
        ["id", "ФИО", "тип", "телефоны", "почта", "сегмент", "город", "примечание", "менеджер", "debt_open",
         "created_at"],
        ["7", "Иванов Иван Иванович", "физлицо", "'+79161234567 +73432223344", "ivanov@example.ru", "ВИП", "Москва",
         "звонить после 18", "op1", "False", "2026-01-01T00:00:00+00:00"],
        ["", "ООО «Вектор»", "company", "8 (916) 123-45-68; +7 495 111-22-33", "", "key", "", "", "", "", ""],
        ["x", "=HYPERLINK(\"x\")", "alien", "12", "not-an-email", "золото", "Mьller", "", "", "", ""],
        ["7", "", "", "", "", "", "", "", "", "", ""],
    ]
    return csv_files(rows)


# --- the runs --------------------------------------------------------------------------------

SETUP = {"ami": (ami_target, ami_seeds), "agi": (agi_target, agi_seeds), "csv": (csv_target, csv_seeds),
         "clients": (clients_target, clients_seeds)}
_MODULES = {"ami": ["ami_bridge"], "agi": ["ivr"], "csv": ["crm_core"], "clients": ["crm_core"]}


def worker(target: str, libfuzzer_args: list[str]) -> None:
    """The libFuzzer process: instrument the target's package, then fuzz until -runs or a crash."""
    import atheris

    logging.disable(logging.CRITICAL)  # the parsers log every bad line; millions of cases, no readers
    with atheris.instrument_imports(include=_MODULES[target]):
        case = SETUP[target][0]()
    atheris.Setup([sys.argv[0], *libfuzzer_args], case)
    atheris.Fuzz()


def fuzz(target: str, cases: int, timeout: int, rss_mb: int) -> bool:
    """One libFuzzer run; prints its figures and returns False if it found a crash, hang or OOM."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as tmp:
        corpus, seeds = Path(tmp, "corpus"), Path(tmp, "seeds")
        corpus.mkdir()
        seeds.mkdir()
        for i, seed in enumerate(SETUP[target][1]()):
            (seeds / f"seed-{i:04d}").write_bytes(seed)
        tokens = Path(tmp, "tokens.dict")
        tokens.write_text("".join('"' + "".join(f"\\x{b:02x}" for b in t) + '"\n' for t in TOKENS))
        args = [f"-runs={cases}", f"-timeout={timeout}", f"-rss_limit_mb={rss_mb}", "-max_len=8192",
                f"-dict={tokens}", f"-artifact_prefix={ARTIFACTS}/{target}-", "-print_final_stats=1",
                "-print_pcs=0", str(corpus), str(seeds)]
        log_path = ARTIFACTS / f"{target}.log"
        started = time.monotonic()
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, __file__, "--worker", target, "--", *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if re.search(r"\s(pulse|DONE)\s|ERROR|Uncaught", line):
                    print(f"  {target}: {line.strip()}", flush=True)
            code = proc.wait()
        wall = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", text, re.M))
    done = int(stats.get("number_of_executed_units", 0))
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    failures = re.findall(r"Test unit written to (\S+)", text)
    ok = code == 0 and not failures and done >= cases
    print(f"{target}: {done:,} cases in {wall:.1f} s = {done / wall:,.0f} cases/s; "
          f"coverage {cov[-1][0] if cov else '?'} edges / {cov[-1][1] if cov else '?'} features; "
          f"slowest case {stats.get('slowest_unit_time_sec', '?')} s; peak RSS {stats.get('peak_rss_mb', '?')} MB; "
          f"{'no crash, no hang' if ok else 'FAILED (exit ' + str(code) + ')'}", flush=True)
    for exception in re.findall(r"=== Uncaught Python exception: ===\n(.*)", text):
        print(f"  {target}: {exception}")
    for path in failures:
        print(f"  {target}: failing input {path}; replay: .venv/bin/python bench/fuzz.py {target} --replay {path}")
    if not ok:
        print(f"  {target}: libFuzzer log {log_path}")
    return ok


def main() -> None:
    if "--worker" in sys.argv:  # the child: bench/fuzz.py --worker TARGET -- <libFuzzer args>
        at = sys.argv.index("--worker")
        worker(sys.argv[at + 1], sys.argv[at + 3 :])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", choices=TARGETS)
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases per target (default 1,000,000)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one case may take before it is a hang")
    parser.add_argument("--rss-mb", type=int, default=1024, help="memory limit of a fuzzing process")
    parser.add_argument("--replay", metavar="FILE", help="run one saved input through the target and exit")
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.replay:
        (target,) = args.targets
        sys.exit(subprocess.call([sys.executable, __file__, "--worker", target, "--", args.replay]))
    print(f"fuzz: {args.cases:,} cases per target, {args.timeout} s per case is a hang, "
          f"{args.rss_mb} MB RSS limit; Python {sys.version.split()[0]}; {os.cpu_count()} cores", flush=True)
    results = [fuzz(target, args.cases, args.timeout, args.rss_mb) for target in args.targets]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
