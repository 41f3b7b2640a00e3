"""The docstring parser: Google, NumPy and Sphinx styles, Chinese text kept exactly."""

from __future__ import annotations

from kimi_agent.tooling._docstrings import Docstring, parse_docstring

GOOGLE = '''查询订单状态，返回物流信息。

    只查询本店的订单。

    Args:
        order_id (str): 订单号，例如 "A1024"。
        include_items: 是否返回商品明细，
            默认不返回。
        *extra: 其他参数。

    Returns:
        dict: 订单详情。

    Raises:
        KeyError: 订单不存在。

    Note:
        数据每五分钟同步一次。
    '''

NUMPY = '''退款到原支付账户。

    Parameters
    ----------
    order_id : str
        订单号，例如 "A1024"。
    amount, fee : float
        金额（元），
        精确到分。
    reason
        退款原因。

    Returns
    -------
    str
        退款单号。

    Raises
    ------
    ValueError
        金额超出订单金额。
    '''

SPHINX = '''查询天气。

    按城市查询当天天气。

    :param city: 城市名，如“北京”。
    :param str unit: 温度单位，
        摄氏或华氏。
    :type city: str
    :returns: 天气描述。
    :rtype: str
    :raises LookupError: 未知城市。
    '''


def test_google_style() -> None:
    doc = parse_docstring(GOOGLE)
    assert doc.summary == "查询订单状态，返回物流信息。"
    assert doc.description == (
        "查询订单状态，返回物流信息。\n\n只查询本店的订单。\n\nNote:\n    数据每五分钟同步一次。"
    )
    assert doc.params == {
        "order_id": '订单号，例如 "A1024"。',
        "include_items": "是否返回商品明细，\n默认不返回。",
        "extra": "其他参数。",
    }
    assert doc.returns == "dict: 订单详情。"


def test_numpy_style() -> None:
    doc = parse_docstring(NUMPY)
    assert doc.description == "退款到原支付账户。"
    assert doc.params == {
        "order_id": '订单号，例如 "A1024"。',
        "amount": "金额（元），\n精确到分。",
        "fee": "金额（元），\n精确到分。",
        "reason": "退款原因。",
    }
    assert doc.returns == "str\n退款单号。"


def test_sphinx_style() -> None:
    doc = parse_docstring(SPHINX)
    assert doc.summary == "查询天气。"
    assert doc.description == "查询天气。\n\n按城市查询当天天气。"
    assert doc.params == {"city": "城市名，如“北京”。", "unit": "温度单位，\n摄氏或华氏。"}
    assert doc.returns == "天气描述。"


def test_chinese_section_names_and_full_width_colons() -> None:
    doc = parse_docstring('''转人工客服。

    参数：
        原因： 转接原因，例如“投诉”。
        summary（str）：对话摘要。
    返回值:
        工单号。
    ''')
    assert doc.description == "转人工客服。"
    assert doc.params == {"原因": "转接原因，例如“投诉”。", "summary": "对话摘要。"}
    assert doc.returns == "工单号。"


def test_empty_and_plain_docstrings() -> None:
    assert parse_docstring(None) == Docstring()
    assert parse_docstring("   ") == Docstring()
    doc = parse_docstring("Look up an order.\n\nSecond paragraph\nwraps here.")
    assert doc.summary == "Look up an order."
    assert doc.description == "Look up an order.\n\nSecond paragraph\nwraps here."
    assert doc.params == {}


def test_a_colon_in_prose_is_not_a_section() -> None:
    doc = parse_docstring("Search the FAQ.\n\nExample query: 退货政策\nArgs:\n    q: 查询词")
    assert doc.description == "Search the FAQ.\n\nExample query: 退货政策"
    assert doc.params == {"q": "查询词"}
