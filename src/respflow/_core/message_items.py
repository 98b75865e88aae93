"""Assistant messages: text, citations, and sandbox links nobody annotated."""

from __future__ import annotations

from typing import Any

from .. import _events as ev
from . import wire
from .items import ItemState, Json, Part, Record, text_or_none
from .links import find_uncovered_links

__all__ = ["MessageItems"]

_FILE_ANNOTATIONS = frozenset({"container_file_citation", "file_citation", "file_path"})


class MessageItems(ItemState):
    """Messages: text deltas, annotations as they arrive, links judged at each part's end."""

    def _on_part_added(self, event: wire.ContentPartAdded) -> None:
        item = self._item(event, "message")
        if item is not None and item.kind == "message":
            item.part(event.content_index)

    def _on_text_delta(self, event: wire.TextDelta) -> None:
        item = self._item(event, "message")
        if item is None:
            return
        item.part(event.content_index).streamed.add(event.delta)
        self._out.append(
            ev.TextDelta(
                response_id=self._rid,
                sequence_number=self._seq,
                cursor=self._cursor(),
                item_id=item.item_id,
                output_index=item.index,
                content_index=event.content_index,
                delta=event.delta,
            )
        )

    def _on_text_done(self, event: wire.TextDone) -> None:
        item = self._item(event, "message")
        if item is None:
            return
        part = item.part(event.content_index)
        if event.text is not None:
            text = event.text
            part.streamed.settle(text)
        else:
            text = part.streamed.text()
        part.text = text
        self._emit(
            ev.TextDone,
            item_id=item.item_id,
            output_index=item.index,
            content_index=event.content_index,
            text=text,
        )

    def _on_annotation(self, event: wire.AnnotationAdded) -> None:
        item = self._item(event, "message")
        if item is None or event.annotation is None:
            return
        part = item.part(event.content_index)
        index = event.annotation_index
        if index is None:
            index = len(part.annotations)
        part.annotations[index] = event.annotation
        self._cite(item, event.content_index, index, event.annotation)

    def _on_part_done(self, event: wire.ContentPartDone) -> None:
        # Annotations arrive after the last text delta, so the part's end is the first
        # moment a link can be judged as having no annotation.
        item = self._item(event, "message")
        if item is None or item.kind != "message" or event.part.get("type") != "output_text":
            return
        part = item.part(event.content_index)
        text = event.part.get("text")
        if isinstance(text, str):
            part.text = text
            part.streamed.settle(text)
        annotations = event.part.get("annotations")
        if isinstance(annotations, list):
            for index, annotation in enumerate(annotations):
                part.annotations.setdefault(index, annotation)
                self._cite(item, event.content_index, index, annotation)
        self._link(item, event.content_index, part)

    def _on_refusal_delta(self, event: wire.RefusalDelta) -> None:
        item = self._item(event, "message")
        if item is not None:
            item.part(event.content_index).streamed.add(event.delta)

    def _on_refusal_done(self, event: wire.RefusalDone) -> None:
        item = self._item(event, "message")
        if item is not None and event.refusal is not None:
            item.part(event.content_index).text = event.refusal

    def _cite(self, item: Record, content_index: int, index: int, annotation: Any) -> None:
        key = (content_index, index)
        if key in item.cited:
            return
        item.cited.add(key)
        kind = annotation.get("type") if isinstance(annotation, dict) else None
        if not isinstance(kind, str) or kind not in _FILE_ANNOTATIONS:
            return
        file_id = annotation.get("file_id")
        if not isinstance(file_id, str):
            return
        start = annotation.get("start_index", annotation.get("index"))
        end = annotation.get("end_index", start)
        self._emit(
            ev.FileCited,
            item_id=item.item_id,
            output_index=item.index,
            content_index=content_index,
            kind=kind,
            file_id=file_id,
            filename=text_or_none(annotation.get("filename")),
            # type(), not isinstance(): a bool is an int that the event's readers refuse.
            start_index=start if type(start) is int else 0,
            end_index=end if type(end) is int else 0,
            container_id=text_or_none(annotation.get("container_id")),
        )

    def _link(self, item: Record, content_index: int, part: Part) -> None:
        if content_index in item.linked:
            return
        item.linked.add(content_index)
        text = part.text if part.text is not None else part.streamed.text()
        for link in find_uncovered_links(text, part.annotations.values()):
            self._emit(
                ev.FileLink,
                item_id=item.item_id,
                output_index=item.index,
                content_index=content_index,
                path=link.path,
                start_index=link.start,
                end_index=link.end,
                container_id=self._container_id,
            )

    def _complete_message(self, item: Record, final: Json) -> None:
        content = final.get("content")
        texts: list[str] = []
        annotations: list[Json] = []
        offset = 0
        for content_index, raw in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(raw, dict) or raw.get("type") != "output_text":
                continue
            part = item.part(content_index)
            text = raw.get("text")
            part.text = text if isinstance(text, str) else part.streamed.text()
            anns = raw.get("annotations")
            for index, annotation in enumerate(anns if isinstance(anns, list) else ()):
                part.annotations.setdefault(index, annotation)
                self._cite(item, content_index, index, annotation)
                annotations.append(_shifted(annotation, offset))
            self._link(item, content_index, part)
            texts.append(part.text)
            offset += len(part.text)
        for part in item.parts.values():
            part.streamed.drop()  # the message is finished: what streamed is read no more
        phase = final.get("phase")
        self._emit(
            ev.MessageCompleted,
            item_id=item.item_id or str(final.get("id") or ""),
            output_index=item.index,
            status=str(final.get("status") or "completed"),
            text="".join(texts),
            annotations=annotations,
            phase=phase if isinstance(phase, str) else None,
        )


def _shifted(annotation: Any, offset: int) -> Json:
    if not isinstance(annotation, dict):
        return {"value": annotation}
    if not offset:
        return annotation
    shifted = dict(annotation)
    for key in ("start_index", "end_index", "index"):
        if isinstance(shifted.get(key), int):
            shifted[key] += offset
    return shifted
