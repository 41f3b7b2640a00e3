"""MCP results (the SDK's own content types) → the text of a tool message."""

from __future__ import annotations

import base64
import json

import mcp_types as t
from hypothesis import given
from hypothesis import strategies as st

from kimi_agent.mcp._results import result_text

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


def text(value: str) -> t.TextContent:
    return t.TextContent(type="text", text=value)


def test_text_blocks_are_joined() -> None:
    assert result_text([text("第一行"), text("第二行")], None) == "第一行\n第二行"


def test_structured_content_alone_is_compact_json_with_chinese_kept() -> None:
    out = result_text([], {"城市": "上海", "温度": 25})
    assert out == '{"城市":"上海","温度":25}'


def test_structured_content_already_in_the_text_is_not_repeated() -> None:
    data = {"城市": "上海"}
    assert result_text([text(json.dumps(data, indent=2, ensure_ascii=False))], data) == \
        json.dumps(data, indent=2, ensure_ascii=False)
    assert result_text([text("晴")], {"result": "晴"}) == "晴"
    assert result_text([text("共 3 条")], {"items": [1, 2, 3]}) == \
        '共 3 条\n{"items":[1,2,3]}', "a summary and the data: both are kept"


def test_images_audio_and_resources_are_described() -> None:
    png = base64.b64encode(b"\x89PNG" + b"0" * 66).decode()
    blocks = [
        text("截图如下"),
        t.ImageContent(type="image", data=png, mime_type="image/png"),
        t.AudioContent(type="audio", data=base64.b64encode(b"abc").decode(),
                       mime_type="audio/wav"),
        t.ResourceLink(type="resource_link", uri="file:///报告.txt", name="报告",
                       mime_type="text/plain", description="月度报告"),
        t.EmbeddedResource(type="resource", resource=t.TextResourceContents(
            uri="memo://1", mime_type="text/plain", text="备忘：明天开会")),
        t.EmbeddedResource(type="resource", resource=t.BlobResourceContents(
            uri="blob://2", blob=base64.b64encode(b"12345").decode())),
    ]
    lines = result_text(blocks, None).splitlines()
    assert lines[0] == "截图如下"
    assert lines[1] == "[image: image/png, 70 bytes, not shown: this model reads text only]"
    assert lines[2].startswith("[audio: audio/wav, 3 bytes")
    assert lines[3] == "[resource link: file:///报告.txt, name 报告, text/plain — 月度报告]"
    assert lines[4:6] == ["[resource memo://1, text/plain]", "备忘：明天开会"]
    assert lines[6] == "[resource blob://2, 5 bytes of binary data, not shown]"


@given(JSON)
def test_any_structured_value_survives_as_json(value: object) -> None:
    out = result_text([], value)
    if value is not None:
        assert json.loads(out) == value
