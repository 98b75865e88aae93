"""Memory proportional to the text: a long answer or code call in small deltas.

The Assembler keeps what streamed (a response cut off is completed with it), joined as it
goes so that it takes about the text's own size, and drops it once the item is finished
(the finished item is the truth, and is kept once). Measured with tracemalloc: what
respflow allocates, not the process's footprint; and the work of each ``feed`` by the
lines of respflow's code it runs.
"""

from __future__ import annotations

import itertools
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import respflow
from respflow import Assembler

from .test_hostile_files_naming import _work

LINE = "All work and no play makes Jack a dull boy. "


def frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class Answer:
    """The wire bytes of a response with one long message (or code call) in small deltas.

    The frames that carry the whole text are built up front, outside any measurement;
    the deltas are made as they are fed, a few at a time.
    """

    def __init__(self, text: str, *, size: int = 8, code: bool = False) -> None:
        self.text = text
        self.size = size
        self.code = code
        kind = "code_interpreter_call" if code else "message"
        added: dict[str, Any] = {"id": "item_1", "type": kind, "status": "in_progress"}
        if code:
            final = {**added, "status": "completed", "code": text, "outputs": []}
        else:
            part = {"type": "output_text", "text": text, "annotations": []}
            final = {**added, "status": "completed", "role": "assistant", "content": [part]}
        response = {"id": "resp_1", "object": "response", "model": "gpt-5", "output": []}
        ref = {"item_id": "item_1", "output_index": 0}
        self.head = [
            frame({"type": "response.created", "sequence_number": 0, "response": response}),
            frame(
                {
                    "type": "response.output_item.added",
                    "sequence_number": 1,
                    "output_index": 0,
                    "item": added,
                }
            ),
        ]
        last = 2 + -(-len(text) // size)
        if code:
            done = [{"type": "response.code_interpreter_call_code.done", **ref, "code": text}]
        else:
            done = [
                {"type": "response.output_text.done", **ref, "content_index": 0, "text": text},
                {"type": "response.content_part.done", **ref, "content_index": 0, "part": part},
            ]
        done += [
            {"type": "response.output_item.done", "output_index": 0, "item": final},
            {
                "type": "response.completed",
                "response": {**response, "status": "completed", "output": [final]},
            },
        ]
        self.done = [frame({**event, "sequence_number": last + n}) for n, event in enumerate(done)]

    def deltas(self) -> Iterator[bytes]:
        """The deltas, 64 to a chunk."""
        kind = (
            "response.code_interpreter_call_code.delta"
            if self.code
            else "response.output_text.delta"
        )
        fields = '"item_id":"item_1","output_index":0' + ("" if self.code else ',"content_index":0')
        batch = []
        for n, at in enumerate(range(0, len(self.text), self.size)):
            delta = json.dumps(self.text[at : at + self.size])
            batch.append(
                f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":{2 + n},'
                f'{fields},"delta":{delta}}}\n\n'.encode()
            )
            if len(batch) == 64:
                yield b"".join(batch)
                batch = []
        yield b"".join(batch)

    def rest(self) -> Iterator[bytes]:
        """The frames that carry the whole text, in 64 KiB reads."""
        for data in self.done:
            for at in range(0, len(data), 65536):
                yield data[at : at + 65536]


def text_of(length: int) -> str:
    return (LINE * (length // len(LINE) + 1))[:length]


def test_a_long_answer_in_small_deltas_is_held_in_about_its_own_size() -> None:
    answer = Answer(text_of(256 << 10))
    asm = Assembler()
    tracemalloc.start()
    try:
        for chunk in itertools.chain(answer.head, answer.deltas()):
            asm.feed(chunk)
        streaming, _ = tracemalloc.get_traced_memory()
        for chunk in answer.rest():
            events = asm.feed(chunk)
        del events
        finished, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = len(answer.text)
    # Kept delta by delta, 8-character deltas took 8.2 times the text while streaming and
    # 9.2 once finished; the peak was 12 times.
    assert streaming < 1.1 * size
    assert finished < 1.1 * size  # the finished item, once
    # A frame carrying the whole text arrives while the text is held: the frame's bytes
    # and the text held, which the frame's text is compared with rather than decoded
    # into a third copy (tests/test_held_text.py); the frame's buffer grows by up to an
    # eighth as it fills. Decoding it whole, the peak was 3.1 times the text.
    assert peak < 2.75 * size


def test_a_long_code_call_in_small_deltas_is_held_in_about_its_own_size() -> None:
    answer = Answer(text_of(128 << 10), size=4, code=True)
    asm = Assembler()
    tracemalloc.start()
    try:
        for chunk in itertools.chain(answer.head, answer.deltas()):
            asm.feed(chunk)
        streaming, _ = tracemalloc.get_traced_memory()
        for chunk in answer.rest():
            asm.feed(chunk)
        finished, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streaming < 1.1 * len(answer.text)
    # code.done's code was kept beside the finished call's: twice the code.
    assert finished < 1.1 * len(answer.text)


def test_a_cut_off_answer_still_keeps_every_delta_that_arrived() -> None:
    answer = Answer(text_of(100_000), size=3)
    asm = Assembler()
    events = [e for chunk in itertools.chain(answer.head, answer.deltas()) for e in asm.feed(chunk)]
    events += asm.close()
    [message] = [e for e in events if isinstance(e, respflow.MessageCompleted)]
    assert message.text == answer.text
    assert message.status == "incomplete"


def _costs(answer: Answer) -> tuple[int, int]:
    """The most lines of respflow's code, and the most bytes allocated at once, that
    one feed of 64 deltas took."""
    asm = Assembler()
    for chunk in answer.head:
        asm.feed(chunk)
    most_lines = most_bytes = 0
    tracemalloc.start()
    try:
        for chunk in answer.deltas():
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            with _work() as work:
                asm.feed(chunk)
            _, peak = tracemalloc.get_traced_memory()
            most_lines = max(most_lines, work[0])
            most_bytes = max(most_bytes, peak - before)
    finally:
        tracemalloc.stop()
    return most_lines, most_bytes


def test_no_feed_of_deltas_does_work_that_grows_with_what_came_before() -> None:
    short = _costs(Answer(text_of(40_000)))
    long = _costs(Answer(text_of(320_000)))
    # The text grew eightfold; the work of a feed did not (a list of every delta grew
    # with it, and so did the copying when it was resized).
    assert long[0] <= short[0] + 20, (short, long)
    assert long[1] <= short[1] + 4096, (short, long)
