"""Per-record normalizers for the traffic formats depsim reads.

Each normalizer takes one decoded record and returns normalized messages, or raises `Rejected`
with a reason code that lands in the quarantine. Nothing here reads files (see `ingest.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import orjson

Format = Literal["openai_chat", "hh_rlhf", "sharegpt", "lmsys", "eval_csv", "eval_jsonl"]

# Quarantine reason codes; the README lists them with their meaning.
REASONS = (
    "invalid_json",
    "not_an_object",
    "missing_messages",
    "unknown_role",
    "wrong_field_type",
    "empty_conversation",
    "no_assistant_turn",
    "non_utf8",
    "message_too_large",
    "duplicate_conversation_id",
    "multimodal_content",
    "null_content",
    "pair_prefix_mismatch",
    "empty_final_turn",
    "missing_prompt",
    "malformed_row",
    "unknown_format",
    "truncated_file",
    "corrupt_file",
)

ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
}
MEDIA_PART_TYPES = {"image_url", "image", "input_audio", "audio", "file", "input_image", "video_url"}


class Message(TypedDict):
    role: str
    content: str | None
    tool_calls: str | None  # canonical JSON of the OpenAI `tool_calls` list, kept verbatim
    tool_call_id: str | None
    name: str | None


@dataclass
class Rejected(Exception):
    reason: str
    detail: str

    def __post_init__(self) -> None:
        assert self.reason in REASONS, self.reason


@dataclass
class Normalized:
    messages: list[Message]
    multimodal: bool = False
    refusal_parts: int = 0  # assistant `refusal` content parts, kept as text and counted


def normalize_id(value: Any, id_type: str = "typed") -> str | None:
    """A record id as text. Strings stay as they are; other JSON values keep their type unless the
    source says ids are text (`id_type: string`), so 7 and "7" are two ids, not one."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, str) or id_type == "string":
        return str(value)
    if isinstance(value, bool):
        return f"bool:{str(value).lower()}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 7.0 from a float-typed column is the id 7
    return f"{type(value).__name__}:{value}"


def detect_format(obj: Any, kind: str) -> Format | None:
    if not isinstance(obj, dict):
        return None
    if kind == "eval_set":
        return "eval_jsonl"
    if "chosen" in obj or "rejected" in obj:
        return "hh_rlhf"
    if "messages" in obj:
        return "openai_chat"
    if "conversations" in obj:
        return "sharegpt"
    if "conversation" in obj:
        return "lmsys"
    return None


@dataclass
class Content:
    text: str | None
    multimodal: bool = False
    refusal_parts: int = 0


def _parts(raw: list[Any], role: str) -> Content:
    """A list of content parts: text parts (or plain strings) joined; an assistant's `refusal` part kept
    as its text and counted; media parts mark the message multimodal."""
    texts: list[str] = []
    out = Content(None)
    for part in raw:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise Rejected("multimodal_content", "content part is neither a string nor an object with a `type`")
        kind = part["type"]
        if kind in ("text", "input_text", "output_text") or (kind == "refusal" and role == "assistant"):
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise Rejected("multimodal_content", f"{kind} content part without a string `{'refusal' if kind == 'refusal' else 'text'}`")
            texts.append(text)
            out.refusal_parts += kind == "refusal"
        elif kind in MEDIA_PART_TYPES:
            out.multimodal = True
        else:
            raise Rejected("multimodal_content", f"unsupported content part type {kind!r}")
    out.text = "\n".join(texts)
    return out


def _content(raw: Any, role: str, has_tool_calls: bool, max_chars: int) -> Content:
    """Content as text, with whether it carried non-text (multimodal) parts and refusal parts."""
    if raw is None:
        if role == "assistant" and has_tool_calls:
            return Content(None)
        raise Rejected("null_content", f"{role} message has null content")
    content = _parts(raw, role) if isinstance(raw, list) else Content(raw)
    if not isinstance(content.text, str):
        raise Rejected("wrong_field_type", f"{role} content is {type(raw).__name__}, expected string or parts")
    if len(content.text) > max_chars:
        raise Rejected("message_too_large", f"{role} message has {len(content.text)} characters (limit {max_chars})")
    return content


def _finish(messages: list[Message], multimodal: bool, kind: str, refusal_parts: int = 0) -> Normalized:
    if not messages:
        raise Rejected("empty_conversation", "conversation has no messages")
    if kind == "traffic" and not any(m["role"] == "assistant" for m in messages):
        raise Rejected("no_assistant_turn", "traffic conversation has no assistant turn to replay")
    return Normalized(messages, multimodal, refusal_parts)


def normalize_messages(raw: Any, kind: str, max_chars: int, role_key: str = "role", content_key: str = "content") -> Normalized:
    """OpenAI-style message lists (also used for LMSYS/WildChat and ShareGPT with other keys)."""
    if not isinstance(raw, list):
        raise Rejected("wrong_field_type", f"messages is {type(raw).__name__}, expected a list")
    out: list[Message] = []
    multimodal, refusals = False, 0
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise Rejected("wrong_field_type", f"message {i} is {type(m).__name__}, expected an object")
        role_raw = m.get(role_key)
        if not isinstance(role_raw, str):
            raise Rejected("wrong_field_type" if role_raw is not None else "unknown_role", f"message {i} has no string `{role_key}`")
        role = ROLE_ALIASES.get(role_raw.lower())
        if role is None:
            raise Rejected("unknown_role", f"message {i} has role {role_raw!r}")
        tool_calls = m.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise Rejected("wrong_field_type", f"message {i} tool_calls is {type(tool_calls).__name__}, expected a list")
        content = _content(m.get(content_key), role, bool(tool_calls), max_chars)
        multimodal |= content.multimodal
        refusals += content.refusal_parts
        for key in ("tool_call_id", "name"):
            if m.get(key) is not None and not isinstance(m.get(key), str):
                raise Rejected("wrong_field_type", f"message {i} {key} is {type(m.get(key)).__name__}, expected a string")
        out.append(
            Message(
                role=role,
                content=content.text,
                tool_calls=orjson.dumps(tool_calls, option=orjson.OPT_SORT_KEYS).decode() if tool_calls else None,
                tool_call_id=m.get("tool_call_id"),
                name=m.get("name"),
            )
        )
    return _finish(out, multimodal, kind, refusals)


def normalize_record(obj: dict[str, Any], fmt: Format, kind: str, max_chars: int) -> Normalized:
    key = {"openai_chat": "messages", "sharegpt": "conversations", "lmsys": "conversation"}[fmt]
    if key not in obj:
        raise Rejected("missing_messages", f"record has no `{key}` field")
    if fmt == "sharegpt":
        return normalize_messages(obj[key], kind, max_chars, role_key="from", content_key="value")
    return normalize_messages(obj[key], kind, max_chars)


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh_transcript(text: str, max_chars: int) -> list[Message]:
    """Split a `\\n\\nHuman: ...\\n\\nAssistant: ...` transcript into messages.

    Only a marker preceded by a blank line starts a turn: "Human:" typed inline inside a turn
    (e.g. "...drag kings.  Human: Then how...") stays part of that turn's text. Two assistant turns
    in a row are kept as they are: they are how the transcript was recorded.
    """
    if not text.startswith("\n\nHuman:"):
        raise Rejected("missing_messages", "hh-rlhf transcript does not start with '\\n\\nHuman:'")
    matches = list(_HH_TURN.finditer(text))
    msgs: list[Message] = []
    for i, marker in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[marker.end() : end]
        role = "user" if marker.group(1) == "Human" else "assistant"
        msgs.append(Message(role=role, content=body, tool_calls=None, tool_call_id=None, name=None))
    for m in msgs:
        if len(m["content"] or "") > max_chars:
            raise Rejected("message_too_large", f"{m['role']} message has {len(m['content'] or '')} characters (limit {max_chars})")
    return msgs


def normalize_hh_pair(obj: dict[str, Any], max_chars: int) -> dict[str, list[Message]]:
    """Both transcripts of a pair; they must share everything before the final assistant turn."""
    out: dict[str, list[Message]] = {}
    for side in ("chosen", "rejected"):
        text = obj.get(side)
        if text is None:
            raise Rejected("missing_messages", f"hh-rlhf record has no `{side}` transcript")
        if not isinstance(text, str):
            raise Rejected("wrong_field_type", f"`{side}` is {type(text).__name__}, expected a string")
        msgs = parse_hh_transcript(text, max_chars)
        if not msgs or msgs[-1]["role"] != "assistant":
            raise Rejected("no_assistant_turn", f"`{side}` does not end with an assistant turn")
        if not (msgs[-1]["content"] or "").strip():
            raise Rejected("empty_final_turn", f"`{side}` has an empty final assistant turn")
        out[side] = msgs
    if out["chosen"][:-1] != out["rejected"][:-1]:
        raise Rejected("pair_prefix_mismatch", "`chosen` and `rejected` differ before the final assistant turn")
    return out


def normalize_eval(obj: dict[str, Any], prompt_column: str, max_chars: int) -> Normalized:
    prompt = obj.get(prompt_column)
    if prompt is None and isinstance(obj.get("turns"), list) and obj["turns"]:
        # Multi-turn eval sets (MT-Bench): the first turn is the prompt; later turns need the model's own
        # earlier answers, so they stay in the record's attributes.
        prompt = obj["turns"][0]
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise Rejected("missing_prompt", f"record has no `{prompt_column}`")
    if not isinstance(prompt, str):
        raise Rejected("wrong_field_type", f"`{prompt_column}` is {type(prompt).__name__}, expected a string")
    if len(prompt) > max_chars:
        raise Rejected("message_too_large", f"prompt has {len(prompt)} characters (limit {max_chars})")
    return Normalized([Message(role="user", content=prompt, tool_calls=None, tool_call_id=None, name=None)])
