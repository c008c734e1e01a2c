"""The README's examples are one story: every fenced command, in order, on a fresh workspace.

Each ```bash block is read the way a person pastes it: `\\` joins lines, `;` separates commands,
`#` starts a comment, a line starting `->` shows an answer and is not run, a command ending in
`&` keeps running in the background (a server), `export` sets the environment of the commands
after it. Each ```python block runs as a script. Placeholders in capitals (RUN_ID, REQUEST_ID,
...) are filled from what the commands before printed, as a reader would copy them; the
README's ports are mapped to free ones, its example hosts (`server`, `hooks.example`) to
127.0.0.1, where this test runs an HTTP receiver for the alerts.

Every command must exit 0 (1 too where its comment says `exit 0 or 1`), every curl must get a
2xx, and every background command must still be running when the story ends. The two set-up
commands (`pip install ...`) are CI's own steps and the only blocks not run here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
PORTS = ("8080", "8081", "5000", "5001", "9000")
COMMAND_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


@dataclass
class Block:
    language: str
    text: str
    line: int


def blocks(text: str) -> list[Block]:
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in BLOCK.finditer(text)
    ]


def is_setup(block: Block) -> bool:
    return block.language == "bash" and block.text.lstrip().startswith("pip install")


# -- reading a bash block as a person pastes it ------------------------------------------------


@dataclass
class Command:
    text: str
    comment: str
    line: int

    @property
    def background(self) -> bool:
        return self.text.endswith("&") and not self.text.endswith("&&")


def _split(line: str) -> tuple[list[str], str]:
    """The commands of one line (split at `;` outside quotes) and its comment."""
    parts, current, quote = [], "", ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            parts.append(current)
            return [p.strip() for p in parts if p.strip()], line[i + 1 :].strip()
        elif char == ";":
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()], ""


def commands(block: Block) -> Iterator[Command]:
    joined = block.text.replace("\\\n", " ")
    offset = 0
    for number, raw in enumerate(joined.splitlines()):
        offset = number
        if raw.strip().startswith("->"):
            continue  # an answer shown, not a command
        found, comment = _split(raw)
        for text in found:
            yield Command(text, comment, block.line + 1 + offset)


def test_reading_a_block_as_pasted() -> None:
    block = Block(
        "bash",
        'a x ; b "y ; z" # note ; not run\n   -> {"answer": 1}\nc --k 1 \\\n  --j 2 &\n# only\n',
        10,
    )
    found = list(commands(block))
    assert [c.text for c in found] == ["a x", 'b "y ; z"', "c --k 1    --j 2 &"]
    assert found[0].comment == "note ; not run"
    assert found[2].background


# -- the story's world: free ports, a receiver for alerts, what was printed ----------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        _Receiver.received.append((self.path, json.loads(body or b"null")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


@dataclass
class Story:
    folder: Path
    env: dict[str, str]
    receiver: int
    ports: dict[str, str] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)
    background: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def fill(self, text: str) -> str:
        text = re.sub(r"https://hooks\.example", f"http://127.0.0.1:{self.receiver}", text)
        text = text.replace("0.0.0.0", "127.0.0.1").replace("//server:", "//127.0.0.1:")
        text = re.sub(r"\b(" + "|".join(PORTS) + r")\b", lambda m: self.ports[m.group(1)], text)
        for name, value in self.placeholders(text).items():
            text = re.sub(rf"(?<![\w.]){re.escape(name)}(?![\w])", value, text)
        return text

    def placeholders(self, text: str) -> dict[str, str]:
        wanted = {
            name: pattern
            for name, pattern in {
                "RUN_ID": r"\b[0-9a-f]{32}\b",
                "BEST_RUN_ID": r"\bbest: ([0-9a-f]{32})\b",
                "RUN_A": r"\b[0-9a-f]{32}\b",
                "RUN_B": r"\b[0-9a-f]{32}\b",
                "REQUEST_ID": r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                "MONITOR_RUN_ID": r"^run (\d+):",
                "ALERT_ID": r"^\s*(\d+)\s+[│|]",
                "lml_...": r"\blml_[A-Za-z0-9_-]+",
            }.items()
            if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text)
        }
        values = {}
        for name, pattern in wanted.items():
            which = 1 if name == "RUN_B" else 0
            values[name] = self._latest(name, pattern, which)
        return values

    def _latest(self, name: str, pattern: str, which: int) -> str:
        for output in reversed(self.printed):
            found = list(dict.fromkeys(re.findall(pattern, output, re.M)))
            if len(found) > which:
                return str(found[which])
        raise AssertionError(f"no earlier command printed a value for {name}")

    def run(self, command: Command) -> None:
        text = self.fill(command.text)
        where = f"README line {command.line}: {command.text}"
        if text.startswith("export "):
            for item in shlex.split(text)[1:]:
                key, _, value = item.partition("=")
                self.env[key] = value
            return
        if command.background:
            self.start(text.rstrip("&").strip(), where)
            return
        if text.startswith("curl "):
            text = "curl --fail-with-body --max-time 60 " + text[len("curl ") :]
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        self.printed.append(done.stdout + done.stderr)
        with (self.folder / "transcript.txt").open("a") as transcript:
            transcript.write(f"$ {text}\n{done.stdout}{done.stderr}\n")
        allowed = {0, 1} if "exit 0 or 1" in command.comment else {0}
        failed = done.returncode not in allowed or done.stderr.startswith("error:")
        assert not failed, (
            f"{where}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )

    def start(self, text: str, where: str) -> None:
        log = self.folder / f"background-{len(self.background)}.log"
        with (self.folder / "transcript.txt").open("a") as transcript:
            transcript.write(f"$ {text} &    (output: {log.name})\n")
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {text}"],
                cwd=self.folder,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((where, process, log))
        port = re.search(r"--port (\d+)", text)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, f"{where}\nstopped: {log.read_text()[-3000:]}"
            if port is None:
                time.sleep(2)  # a scheduler: alive after its first round is enough
                return
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(port.group(1)))) == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"{where}\nnot listening after 90 s: {log.read_text()[-3000:]}")

    def stop(self) -> list[str]:
        """Stop every background command; the ones that had died on their own."""
        died = []
        for where, process, log in self.background:
            if process.poll() is not None:
                died.append(f"{where}\n{log.read_text()[-3000:]}")
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return died


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Story]:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_ADDRESS"] = ""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    told = Story(tmp_path, env, int(receiver.server_address[1]))
    told.ports = {port: str(_free_port()) for port in PORTS}
    told.ports["9000"] = str(told.receiver)
    _Receiver.received.clear()
    try:
        yield told
    finally:
        told.stop()
        receiver.shutdown()
        receiver.server_close()


def test_every_readme_example_runs_in_order(story: Story) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; the README's serving examples use it")
    found = blocks(README.read_text())
    assert sum(is_setup(b) for b in found) == 2, "only the two set-up commands may go unrun"
    for number, block in enumerate(found):
        if is_setup(block):
            continue
        if block.language == "python":
            script = story.folder / f"readme_block_{number}.py"
            script.write_text(block.text)
            story.run(Command(f"python {script.name}", "", block.line))
        else:
            assert block.language == "bash", f"README line {block.line}: a ```{block.language}"
            for command in commands(block):
                story.run(command)
    died = story.stop()
    assert not died, "a background command stopped before the story ended:\n" + "\n".join(died)
    assert any(path == "/hook" for path, _ in _Receiver.received), "no alert reached the webhook"
