"""`kimi-agent chat` and `kimi-agent tools`, driven as subprocesses.

The chat runs offline on the simulator's echo responder (or a script, for approvals), with
stdin piped: it must stream the replies, keep the conversation in the session across
processes, ask y/n for approvals, survive Ctrl-C during a reply, and leave on "exit" or
end of input. Errors in what the user named give a clear message and a non-zero status.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.clikit import LiveCli, run_cli

pytestmark = pytest.mark.timeout(60)

FAST = ("--sim-tps", "0", "--sim-first-token", "0")


def chat(home: Path, *args: str, stdin: str, env: dict[str, str] | None = None
         ) -> tuple[int, str, str]:
    done = run_cli(home, "chat", *FAST, *args, stdin=stdin, timeout=60, env=env)
    return done.returncode, done.stdout, done.stderr


def test_chat_streams_echoed_replies_and_leaves_on_exit(tmp_path: Path) -> None:
    code, out, err = chat(tmp_path, "--session", "c1", "--db", str(tmp_path / "c.db"),
                          stdin="你好，小助手！\n今天上海天气怎么样？\nexit\n")
    assert code == 0, err
    assert "离线" in out and "echoes your messages" in out
    assert "新会话 'c1'" in out
    assert "助手> Echo: 你好，小助手！" in out
    assert "助手> Echo: 今天上海天气怎么样？" in out
    assert out.index("Echo: 你好") < out.index("Echo: 今天")
    assert "Traceback" not in out + err


def test_second_chat_with_the_same_session_sees_the_history(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    chat(tmp_path, "--session", "c2", "--db", db, stdin="第一句话\n第二句话\nquit\n")
    code, out, err = chat(tmp_path, "--session", "c2", "--db", db, stdin="第三句话\n")
    assert code == 0, err
    assert "继续会话 'c2'（4 条消息）" in out
    history = out[:out.index("你> ")]
    assert "你：第一句话" in history and "助手：Echo: 第二句话" in history
    assert "助手> Echo: 第三句话" in out
    other = chat(tmp_path, "--session", "someone-else", "--db", db, stdin="")[1]
    assert "新会话 'someone-else'" in other and "第一句话" not in other


def test_without_a_session_nothing_is_kept(tmp_path: Path) -> None:
    code, out, _ = chat(tmp_path, stdin="随便说说\n")
    assert code == 0
    assert "临时会话" in out and "Echo: 随便说说" in out
    assert not (tmp_path / "chat.db").exists()


def test_end_of_input_leaves_cleanly(tmp_path: Path) -> None:
    code, out, err = chat(tmp_path, "--session", "c3", "--db", str(tmp_path / "c.db"),
                          stdin="")
    assert code == 0, err
    assert "Traceback" not in out + err


SCRIPT = """\
turns:
  - when: {user: 申请退款}
    reasoning: 顾客要退款，提交申请（需要审批）。
    text: 好的，我为您提交退款申请。
    tool_calls:
      - {name: request_refund, arguments: {order_id: A1025, amount: 10, reason: 杯盖漏水}}
  - when: {tool: request_refund, tool_result: refund_id}
    text: 退款已成功提交。
  - when: {tool: request_refund}
    text: 抱歉，这笔退款未获批准。
"""


def test_pending_approvals_are_asked_at_the_prompt(tmp_path: Path) -> None:
    script = tmp_path / "refund.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    args = ("--tools", "kimi_agent_tools", "--deps", "kimi_agent_tools.demo:chat_deps",
            "--sim-script", str(script), "--session", "r", "--db", str(tmp_path / "c.db"))
    code, out, err = chat(tmp_path, *args, stdin="申请退款\ny\n申请退款\nn\nexit\n")
    assert code == 0, err
    assert out.count("批准吗？approve? [y/N]") == 2
    first, second = out.split("批准吗？approve? [y/N]")[1:]
    assert "✓ request_refund" in first and "退款已成功提交。" in first
    assert "✗ request_refund" in second and "抱歉，这笔退款未获批准。" in second


def test_undecided_approvals_are_asked_again(tmp_path: Path) -> None:
    script = tmp_path / "refund.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    args = ("--tools", "kimi_agent_tools", "--deps", "kimi_agent_tools.demo:chat_deps",
            "--sim-script", str(script), "--session", "r", "--db", str(tmp_path / "c.db"))
    # end of input at the question: the call stays pending in the session ...
    code, out, err = chat(tmp_path, *args, stdin="申请退款\n")
    assert code == 0, err
    assert "still pending" in out
    # ... and the next chat on the session asks first
    code, out, err = chat(tmp_path, *args, stdin="y\nexit\n")
    assert code == 0, err
    assert out.index("批准吗？approve? [y/N] y") < out.index("退款已成功提交。")
    # Ctrl-C at the question: asked again before the next message goes out
    with LiveCli(tmp_path, "chat", *FAST, *args) as cli:
        cli.wait_for("你> ")
        cli.send("申请退款")
        asked = cli.wait_for("[y/N] ")
        cli.interrupt()
        pending = cli.wait_for("still pending", after=asked)
        cli.wait_for("你> ", after=pending)
        cli.send("你好")
        again = cli.wait_for("[y/N] ", after=pending)
        cli.send("y")
        done = cli.wait_for("退款已成功提交。", after=again)
        cli.wait_for("Echo: 你好", after=done)
        cli.send("exit")
        assert cli.finish() == 0, cli.output


def test_ctrl_c_stops_the_reply_and_keeps_the_session(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    long_message = "请把这句话原样重复一遍：" + "一二三四五六七八九十" * 10
    slow = ("--sim-tps", "5", "--sim-first-token", "0")
    with LiveCli(tmp_path, "chat", *slow, "--session", "slow", "--db", db) as cli:
        cli.wait_for("你> ")
        cli.send(long_message)
        streaming = cli.wait_for("助手> Echo: ")
        cli.interrupt()
        stopped = cli.wait_for("[已中断 interrupted", after=streaming)
        cli.wait_for("你> ", after=stopped)          # the chat goes on
        cli.send("exit")
        code = cli.finish()
        output = cli.output
    assert code == 0, output
    assert "Traceback" not in output
    assert "一二三四五六七八九十" * 10 not in output[streaming:]   # the reply was cut short
    code, out, err = chat(tmp_path, "--session", "slow", "--db", db, stdin="")
    assert code == 0, err
    assert "继续会话 'slow'（1 条消息）" in out                  # the message is kept
    assert "你：请把这句话原样重复一遍" in out


def test_tools_prints_the_schemas_as_json(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "tools", "kimi_agent_tools")
    assert done.returncode == 0, done.stderr
    schemas = json.loads(done.stdout)
    names = {s["function"]["name"] for s in schemas}
    assert {"faq_search", "get_order", "get_shipping_status", "open_ticket", "request_refund",
            "handoff_to_human", "current_time", "calculate"} <= names
    for schema in schemas:
        assert schema["type"] == "function"
        parameters = schema["function"]["parameters"]
        assert parameters["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(parameters)
        assert "ctx" not in parameters["properties"]                 # RunContext is injected
    assert "订单号" in done.stdout                                      # Chinese kept as is


def test_tools_with_an_attribute(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "tools", "kimi_agent_tools:faq_search")
    assert done.returncode == 0, done.stderr
    assert [s["function"]["name"] for s in json.loads(done.stdout)] == ["faq_search"]


@pytest.mark.parametrize(("target", "message"), [
    ("no_such_module_xyz", "cannot import module 'no_such_module_xyz'"),
    ("kimi_agent_tools:no_such_tool", "has no attribute 'no_such_tool'"),
    ("json", "defines no tools"),
    ("kimi_agent_tools/orders.py", "give a module name, not a file: kimi_agent_tools.orders"),
])
def test_tools_errors_are_clear(tmp_path: Path, target: str, message: str) -> None:
    done = run_cli(tmp_path, "tools", target)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_chat_with_a_bad_tools_module_fails_clearly(tmp_path: Path) -> None:
    code, _, err = chat(tmp_path, "--tools", "no_such_module_xyz", stdin="")
    assert code == 1
    assert "kimi-agent chat: cannot import module 'no_such_module_xyz'" in err
    assert "Traceback" not in err


def test_chat_with_bad_deps_fails_clearly(tmp_path: Path) -> None:
    code, _, err = chat(tmp_path, "--deps", "examples.customer_service", stdin="")
    assert code == 1 and "--deps needs MODULE:ATTR" in err


CASE_SCRIPT = """\
turns:
  - when: {user: 我要投诉}
    reasoning: 建工单，需要审批。
    tool_calls:
      - {name: open_case, arguments: {ticket: {title: 物流太慢, detail: 三天没有更新}}}
  - when: {tool: open_case}
    text: 工单已提交，我们会尽快处理。
"""


def test_an_approval_with_a_pydantic_argument_is_asked_and_survives_a_restart(
        tmp_path: Path) -> None:
    script = tmp_path / "case.yaml"
    script.write_text(CASE_SCRIPT, encoding="utf-8")
    args = ("--tools", "tests.chat_tools", "--sim-script", str(script), "--session", "t",
            "--db", str(tmp_path / "c.db"))
    code, out, err = chat(tmp_path, *args, stdin="我要投诉\n")     # left undecided
    assert code == 0, err
    assert 'open_case(ticket={"title": "物流太慢"' in out and "Traceback" not in out + err
    code, out, err = chat(tmp_path, *args, stdin="y\nexit\n")     # asked again at start
    assert code == 0, err
    assert "工单已提交" in out and "Traceback" not in out + err


def test_a_gateway_error_is_printed_and_the_prompt_stays(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:               # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"BYTESPIKE_API_KEY": "sk-byts-test",
           "BYTESPIKE_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    code, out, err = chat(tmp_path, stdin="你好\n还在吗？\nexit\n", env=env)
    assert code == 0, err
    assert out.count("出错了 error") == 2 and "Traceback" not in out + err


def test_trace_prints_the_run_tree_after_each_reply(tmp_path: Path) -> None:
    code, out, err = chat(tmp_path, "--trace", stdin="你好\nexit\n")
    assert code == 0, err
    tree = out[out.index("invoke_agent"):]
    assert "1 requests" in tree and "chat kimi-k2-6" in tree


def test_the_chat_says_what_it_waits_for(tmp_path: Path) -> None:
    code, out, err = chat(tmp_path, stdin="你好\nexit\n")
    assert code == 0, err
    assert out.index("⏳ 等待模型 kimi-k2-6 回复") < out.index("助手> Echo: 你好")
