"""Code Interpreter and hosted shell calls: the ``code.*`` events."""

from __future__ import annotations

from typing import Any

from .. import _events as ev
from . import wire
from .items import ItemState, Json, Record, text_or_none

__all__ = ["CodeItems"]

INCLUDE_HINT = (
    "outputs is null: the request did not ask for them. Add "
    'include=["code_interpreter_call.outputs"] to responses.create() to receive logs and images.'
)
BACKGROUND_HINT = (
    "outputs came back empty on a background response, a known API limitation. Retrieve "
    'the response with include=["code_interpreter_call.outputs"] once it has completed, '
    "or run it in the foreground."
)
EMPTY_HINT = "the code ran and produced no output (nothing printed, no figure shown)."
# Where the hosted shell runs: any environment but the user's own machine is a container
# whose output the server streams back in a shell_call_output item.
_LOCAL_SHELL = frozenset({"local"})


class CodeItems(ItemState):
    """Code Interpreter calls; hosted shell calls, shown as the same kind of call."""

    _shell_commands: dict[int, int]
    _shell_calls: dict[str, Record]
    _shell_pending: dict[str, Json]

    def _on_code_progress(self, event: wire._ItemEvent) -> None:
        self._item(event, "code")

    def _on_code_interpreting(self, event: wire.CodeInterpreting) -> None:
        item = self._item(event, "code")
        if item is None:
            return
        item.status = "interpreting"
        self._emit(
            ev.CodeInterpreting,
            item_id=item.item_id,
            output_index=item.index,
        )

    def _on_code_delta(self, event: wire.CodeDelta) -> None:
        item = self._item(event, "code")
        if item is None:
            return
        item.code.add(event.delta)
        self._out.append(
            ev.CodeDelta(
                response_id=self._rid,
                sequence_number=self._seq,
                cursor=self._cursor(),
                item_id=item.item_id,
                output_index=item.index,
                delta=event.delta,
            )
        )

    def _on_code_done(self, event: wire.CodeDone) -> None:
        item = self._item(event, "code")
        if item is None:
            return
        code = event.code if event.code is not None else item.code.text()
        item.code.replace(code)
        self._emit(
            ev.CodeDone,
            item_id=item.item_id,
            output_index=item.index,
            code=code,
        )

    def _complete_code(self, item: Record, final: Json) -> None:
        status = str(final.get("status") or "completed")
        code = final.get("code")
        if not isinstance(code, str):
            code = item.code.text()
        item.code.drop()  # the call is finished: what streamed is read no more
        outputs = final.get("outputs")
        if outputs is None and isinstance(final.get("results"), list):
            # Payloads from before mid-2025 carried logs in "results".
            outputs = [r for r in final["results"] if isinstance(r, dict) and "logs" in r]
        container_id = text_or_none(final.get("container_id")) or item.container_id
        if container_id:
            self._container_id = container_id
        if isinstance(outputs, list):
            # An output that is not an object is none: CodeCompleted.outputs holds objects.
            outputs = _objects(outputs)
        for output in outputs if isinstance(outputs, list) else ():
            kind = output.get("type")
            if kind == "logs":
                self._emit(
                    ev.CodeLogs,
                    item_id=item.item_id,
                    output_index=item.index,
                    logs=str(output.get("logs") or ""),
                )
            elif kind == "image":
                self._emit(
                    ev.CodeImage,
                    item_id=item.item_id,
                    output_index=item.index,
                    url=str(output.get("url") or ""),
                )
        if status == "completed" and not outputs:
            reason: ev.MissingReason
            if outputs is None:
                reason, hint = "include_not_requested", INCLUDE_HINT
            elif self._background:
                reason, hint = "background_mode", BACKGROUND_HINT
            else:
                reason, hint = "empty", EMPTY_HINT
            self._emit(
                ev.CodeOutputsMissing,
                item_id=item.item_id,
                output_index=item.index,
                reason=reason,
                hint=hint,
            )
        self._emit(
            ev.CodeCompleted,
            item_id=item.item_id,
            output_index=item.index,
            status=status,
            code=code,
            outputs=outputs if isinstance(outputs, list) else None,
            container_id=container_id,
        )

    # A shell_call item streams its commands (code.delta, one line per command); a separate
    # shell_call_output item streams what they print (code.output), keyed to the call by
    # call_id. The call's code.completed waits for that output, so it carries the outputs
    # as a code interpreter call's does.

    def _on_shell_command(self, event: wire.ShellCommandAdded | wire.ShellCommandDelta) -> None:
        item = self._item(event, "shell")
        if item is None or item.kind != "shell":
            return
        index = event.command_index
        text = event.command if isinstance(event, wire.ShellCommandAdded) else event.delta
        # Only the highest command begun is kept: an index from the wire sizes nothing.
        highest = self._shell_commands.get(item.index)
        if highest is None or index > highest:
            if highest is not None:
                self._shell_delta(item, "\n")
            self._shell_commands[item.index] = index
        if text:
            self._shell_delta(item, text)

    def _shell_delta(self, item: Record, delta: str) -> None:
        item.code.add(delta)
        self._emit(ev.CodeDelta, item_id=item.item_id, output_index=item.index, delta=delta)

    def _on_shell_command_done(self, event: wire.ShellCommandDone) -> None:
        self._item(event, "shell")

    def _shell_call_for(self, event: wire._ItemEvent) -> Record | None:
        """The shell_call a shell_call_output event belongs to (None: not known)."""
        output = self._item(event, "shell_output")
        if output is None:
            return None
        call = self._shell_calls.get(str(output.added.get("call_id") or ""))
        return call or output

    def _on_shell_output(self, event: wire.ShellOutputDelta) -> None:
        item = self._shell_call_for(event)
        if item is None or not isinstance(event.delta, dict):
            return
        for stream in ("stdout", "stderr"):
            text = event.delta.get(stream)
            if isinstance(text, str) and text:
                self._emit(
                    ev.CodeOutput,
                    item_id=item.item_id,
                    output_index=item.index,
                    delta=text,
                    stream=stream,
                    command_index=event.command_index,
                )

    def _on_shell_output_done(self, event: wire.ShellOutputDone) -> None:
        item = self._shell_call_for(event)
        if item is None or not isinstance(event.output, list):
            return
        logs = "".join(
            str(o.get("stdout") or "") + str(o.get("stderr") or "")
            for o in event.output
            if isinstance(o, dict)
        )
        self._emit(ev.CodeLogs, item_id=item.item_id, output_index=item.index, logs=logs)

    def _complete_shell_call(self, item: Record, final: Json) -> None:
        action = final.get("action")
        commands = action.get("commands") if isinstance(action, dict) else None
        if isinstance(commands, list) and all(isinstance(c, str) for c in commands):
            code = "\n".join(commands)
        else:
            code = item.code.text()
        item.code.replace(code)
        if item.container_id:
            self._container_id = item.container_id
        self._emit(ev.CodeDone, item_id=item.item_id, output_index=item.index, code=code)
        environment = final.get("environment") or item.added.get("environment")
        kind = environment.get("type") if isinstance(environment, dict) else None
        call_id = str(final.get("call_id") or item.added.get("call_id") or "")
        if not call_id or (isinstance(kind, str) and kind in _LOCAL_SHELL):
            self._shell_completed(item, final, None)
        else:
            self._shell_calls[call_id] = item
            self._shell_pending[call_id] = final

    def _complete_shell_output(self, output: Record, final: Json) -> None:
        call_id = str(final.get("call_id") or output.added.get("call_id") or "")
        call = self._shell_calls.get(call_id)
        pending = self._shell_pending.pop(call_id, None)
        if call is not None and pending is not None:
            outputs = final.get("output")
            self._shell_completed(
                call, pending, _objects(outputs) if isinstance(outputs, list) else None
            )

    def _shell_completed(self, item: Record, final: Json, outputs: list[Json] | None) -> None:
        code = item.code.text()
        item.code.drop()  # the call is finished: what streamed is read no more
        self._emit(
            ev.CodeCompleted,
            item_id=item.item_id,
            output_index=item.index,
            status=str(final.get("status") or "completed"),
            code=code,
            outputs=outputs,
            container_id=item.container_id,
            tool="shell",
        )

    def _flush_shell_calls(self) -> None:
        """The response ends: shell calls still waiting for their output complete without."""
        for call_id, final in list(self._shell_pending.items()):
            del self._shell_pending[call_id]
            item = self._shell_calls.get(call_id)
            if item is not None:
                self._shell_completed(item, final, None)


def _objects(outputs: list[Any]) -> list[Json]:
    return [output for output in outputs if isinstance(output, dict)]
