"""Text extraction in a bounded worker: a process of its own per file, with a wall-clock limit and
an address-space limit, killed when it overruns. What fails is recorded, never retried forever."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass

from shared.text import nfc


@dataclass(frozen=True)
class Extracted:
    text: str
    error: str | None = None


def _limits(memory_bytes: int, cpu_seconds: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))

    return apply


class TextExtractor:
    """Runs ``services.archive.extraction`` on one file at a time, at most ``concurrency`` at once."""

    def __init__(
        self, *, timeout_seconds: float, memory_mb: int, languages: str, max_chars: int, concurrency: int = 2
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.memory_bytes = memory_mb * 1024 * 1024
        self.languages = languages
        self.max_chars = max_chars
        self._slots = asyncio.Semaphore(concurrency)

    async def check(self, data: bytes, content_type: str) -> str | None:
        """Why a scan cannot be read (None: it can), checked in the same bounded worker."""
        return (await self._run(data, content_type, "--check")).error

    async def extract(self, data: bytes, content_type: str) -> Extracted:
        """The file's text, or why there is none (a malformed file, a time or memory overrun)."""
        return await self._run(data, content_type, self.languages)

    async def _run(self, data: bytes, content_type: str, mode: str) -> Extracted:
        async with self._slots:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.archive.extraction",
                content_type,
                mode,
                str(self.max_chars),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=_limits(self.memory_bytes, int(self.timeout_seconds) + 1),
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(data), self.timeout_seconds)
            except TimeoutError:
                process.kill()
                await process.wait()
                return Extracted("", f"extraction took longer than {self.timeout_seconds:g} s")
            except BaseException:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                raise
        if process.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            return Extracted("", f"extraction failed (exit {process.returncode}): {tail[0][:300]}")
        try:
            answer = json.loads(out)
        except ValueError:
            return Extracted("", "extraction gave no answer")
        if "error" in answer:
            return Extracted("", str(answer["error"])[:500])
        return Extracted(nfc(str(answer.get("text", ""))))
