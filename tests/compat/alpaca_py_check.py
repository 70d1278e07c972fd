"""Drives orderd with the official Alpaca SDK (alpaca-py), unmodified but
for the base URL. Every call parses orderd's answer into alpaca-py's own
models, so a missing or mistyped field fails here.

Environment: ORDERD_BASE_URL (http://HOST:PORT), APCA_KEY_ID, APCA_SECRET,
and VENUE_ADMIN_URL: the exchange simulator, whose accelerated day the
script walks through (closed, open, closed) for the auction orders.
Prints one JSON summary on stdout; exits 1 with a traceback on any failure.
"""

import datetime
import json
import os
import sys
import threading
import time
import traceback
import urllib.request

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.enums import AssetStatus
from alpaca.trading.models import TradeActivity
from alpaca.trading.requests import (ClosePositionRequest, GetAssetsRequest, GetCalendarRequest,
                                     GetOrdersRequest, LimitOrderRequest, MarketOrderRequest,
                                     ReplaceOrderRequest, StopLimitOrderRequest, StopOrderRequest,
                                     TrailingStopOrderRequest)
from alpaca.trading.stream import TradingStream

# How long to wait for the stream's fill event.
STREAM_WAIT_SECS = 30


def advance_venue_to(phase):
    """Moves the simulator's accelerated day to the start of `phase`."""
    request = urllib.request.Request(
        os.environ["VENUE_ADMIN_URL"] + "/admin/clock/advance",
        data=json.dumps({"to": phase}).encode(), method="POST",
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.status


def wait_for(client, order_id, status, secs=15):
    for _ in range(secs * 10):
        order = client.get_order_by_id(order_id)
        if order.status == status:
            return order
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} is {client.get_order_by_id(order_id).status}, not {status}")


def trading_day(client, summary):
    """Clock, calendar and assets, then an OPG order through the opening
    auction and a CLS order through the closing auction."""
    clock = client.get_clock()
    assert clock.next_close > clock.timestamp, clock
    summary["clock_is_open"] = clock.is_open
    today = datetime.date.today()
    days = client.get_calendar(GetCalendarRequest(start=today, end=today + datetime.timedelta(days=30)))
    # The test venue's accelerated day opens at its start-up and stays open
    # for hours, so a suite run in the New York evening has a session that
    # closes after midnight: on Alpaca's HH:MM calendar its close reads
    # earlier than its open (the next day's). Either way it has both.
    assert days and days[0].open != days[0].close, days[:1]
    summary["calendar_days"] = len(days)
    assets = client.get_all_assets(GetAssetsRequest(status=AssetStatus.ACTIVE))
    symbols = {a.symbol for a in assets}
    assert {"AAPL", "MSFT"} <= symbols, symbols
    aapl = client.get_asset("AAPL")
    assert aapl.tradable and client.get_asset(str(aapl.id)).symbol == "AAPL"
    summary["assets"] = len(assets)

    advance_venue_to("closed")
    opg = client.submit_order(MarketOrderRequest(
        symbol="MSFT", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.OPG))
    wait_for(client, opg.id, OrderStatus.ACCEPTED)
    advance_venue_to("open")
    summary["opg_status"] = wait_for(client, opg.id, OrderStatus.FILLED).status.value
    cls = client.submit_order(MarketOrderRequest(
        symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.CLS))
    assert cls.time_in_force == TimeInForce.CLS
    advance_venue_to("closed")
    summary["cls_status"] = wait_for(client, cls.id, OrderStatus.FILLED).status.value
    # Back to an open market for what follows.
    advance_venue_to("open")


def refusal(client, request):
    """(status, message) of the error that submitting `request` gets;
    (None, None) if it is accepted."""
    try:
        client.submit_order(request)
        return None, None
    except APIError as error:
        return error.status_code, json.loads(str(error))["message"]


def wait_event(events, order_id, event, secs=15):
    for _ in range(secs * 10):
        if any(e["order_id"] == order_id and e["event"].lower().endswith(event) for e in events):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {event} event for {order_id} on the stream: {events}")


def replace(client, events, summary):
    """A resting limit buy replaced through alpaca-py's ReplaceOrderRequest
    (a larger total qty, a new limit, the replacement's client_order_id):
    the answer parses into alpaca-py's Order as the replacement; the
    original ends replaced, naming it, and the stream says so; replacing
    the replaced original is refused with 422; the replacement cancels."""
    original = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00))
    original = wait_for(client, original.id, OrderStatus.NEW)
    new = client.replace_order_by_id(original.id, ReplaceOrderRequest(
        qty=3, limit_price=2.00, client_order_id="compat-replace-1"))
    assert new.id != original.id and new.replaces == original.id, (new.id, new.replaces, original.id)
    assert new.client_order_id == "compat-replace-1", new.client_order_id
    assert new.symbol == "AAPL" and new.side == OrderSide.BUY and new.time_in_force == TimeInForce.GTC, new
    # The answer may be pending_new on a slow machine: the venue works the
    # replacement soon after.
    summary["replacement"] = [str(new.qty), str(new.limit_price),
                              wait_for(client, new.id, OrderStatus.NEW).status.value, new.order_type.value]
    replaced = wait_for(client, original.id, OrderStatus.REPLACED)
    assert replaced.replaced_by == new.id, (replaced.replaced_by, new.id)
    assert replaced.replaced_at is not None and replaced.replaced_at >= replaced.created_at, replaced
    summary["replaced"] = [replaced.status.value, str(replaced.qty), str(replaced.limit_price)]
    wait_event(events, str(original.id), "replaced")
    by_client = client.get_order_by_client_id("compat-replace-1")
    assert by_client.id == new.id and by_client.replaces == original.id, by_client
    try:
        client.replace_order_by_id(original.id, ReplaceOrderRequest(limit_price=3.00))
        summary["replace_replaced_status"] = None
    except APIError as error:
        summary["replace_replaced_status"] = error.status_code
        summary["replace_replaced_message"] = json.loads(str(error))["message"]
    client.cancel_order_by_id(new.id)
    summary["replacement_canceled"] = wait_for(client, new.id, OrderStatus.CANCELED).status.value
    # The refused replace changed nothing: the original is still replaced.
    assert client.get_order_by_id(original.id).status == OrderStatus.REPLACED


def nvda_held(client):
    """The NVDA position's qty as orderd answers it; "0" without one."""
    try:
        return str(client.get_open_position("NVDA").qty)
    except APIError as error:
        assert error.status_code == 404, error
        return "0"


def wait_held(client, qty, secs=15):
    for _ in range(secs * 10):
        if nvda_held(client) == qty:
            return
        time.sleep(0.1)
    raise AssertionError(f"NVDA position {nvda_held(client)}, not {qty}")


def fractional(client, summary):
    """A fractional buy of NVDA and the sell of the same fraction, as
    alpaca-py sends them (qty a float), read back through its models; a
    fractional order for longer than the day is refused naming the field."""
    buy = client.submit_order(MarketOrderRequest(
        symbol="NVDA", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert buy.notional is None, buy
    buy = wait_for(client, buy.id, OrderStatus.FILLED)
    summary["fractional_buy"] = [str(buy.qty), str(buy.filled_qty)]
    wait_held(client, "0.5")
    sell = client.submit_order(MarketOrderRequest(
        symbol="NVDA", qty=0.5, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    sell = wait_for(client, sell.id, OrderStatus.FILLED)
    summary["fractional_sell"] = [str(sell.qty), str(sell.filled_qty)]
    wait_held(client, "0")
    # $100 of NVDA: notional set and qty null as alpaca-py reads them, the
    # qty the venue decided once filled; then exactly that many sold.
    spend = client.submit_order(MarketOrderRequest(
        symbol="NVDA", notional=100, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert float(spend.notional) == 100 and (spend.qty is None or spend.status == OrderStatus.FILLED), spend
    spend = wait_for(client, spend.id, OrderStatus.FILLED)
    assert spend.qty is not None and spend.filled_qty == spend.qty, spend
    summary["notional_buy"] = [str(spend.notional), spend.status.value]
    wait_held(client, str(spend.qty))
    back = client.submit_order(MarketOrderRequest(
        symbol="NVDA", qty=float(spend.qty), side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    wait_for(client, back.id, OrderStatus.FILLED)
    wait_held(client, "0")
    summary["notional_qty_sold_back"] = str(back.qty) == str(spend.qty)
    status, message = refusal(client, MarketOrderRequest(
        symbol="NVDA", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC))
    summary["fractional_gtc_status"] = status
    summary["fractional_gtc_message"] = message


def manage_positions(client, summary):
    """Closes one share of MSFT, then every position (canceling open
    orders first), then reads the fills back as account activities."""
    one = client.close_position("MSFT", ClosePositionRequest(qty="1"))
    assert one.side == OrderSide.SELL and float(one.qty) == 1, one
    summary["close_one_qty"] = str(one.qty)
    wait_for(client, one.id, OrderStatus.FILLED)
    client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00))
    # Stop orders far from the price rest untriggered (a sell stop holds
    # shares: close-all with cancel_orders frees them first).
    stops = [
        client.submit_order(StopOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=1.00)),
        client.submit_order(StopLimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            stop_price=5000.00, limit_price=5001.00)),
        client.submit_order(TrailingStopOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, trail_percent=50)),
        client.submit_order(TrailingStopOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, trail_price=500.00)),
    ]
    summary["stop_orders"] = sorted(
        [s.order_type.value, s.status.value, s.stop_price is not None or s.trail_percent is not None
         or s.trail_price is not None] for s in stops)
    closed = client.close_all_positions(cancel_orders=True)
    summary["close_all"] = sorted([c.symbol, c.status] for c in closed)
    for entry in closed:
        wait_for(client, entry.body.id, OrderStatus.FILLED)
    summary["positions_after_close_all"] = len(client.get_all_positions())
    # alpaca-py's TradingClient has no activities call: its REST client and
    # its own activity model read them.
    raw = client.get("/account/activities", {"activity_types": "FILL", "direction": "asc"})
    fills = [TradeActivity(**activity) for activity in raw]
    summary["fill_activities"] = len(fills)
    summary["fill_sides"] = sorted({f.side.value for f in fills})


def main():
    base = os.environ["ORDERD_BASE_URL"]
    key = os.environ["APCA_KEY_ID"]
    secret = os.environ["APCA_SECRET"]
    client = TradingClient(key, secret, paper=False, url_override=base)
    summary = {}

    # The trade_updates stream, listening before anything trades.
    events = []
    filled = threading.Event()
    stream = TradingStream(key, secret, paper=False, url_override=base.replace("http", "ws", 1) + "/stream")

    async def on_update(update):
        events.append({"event": str(update.event), "order_id": str(update.order.id),
                       "status": update.order.status.value, "execution_id": str(update.execution_id),
                       "qty": update.qty, "price": update.price})
        if str(update.event).endswith("fill") and update.order.status == OrderStatus.FILLED:
            filled.set()

    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    time.sleep(1.0)

    limit = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price=1.00, client_order_id="compat-limit-1"))
    summary["limit_status"] = limit.status.value
    summary["limit_client_order_id"] = limit.client_order_id

    market = client.submit_order(MarketOrderRequest(
        symbol="MSFT", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    summary["market_status"] = market.status.value

    sell = client.submit_order(MarketOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    summary["sell_status"] = sell.status.value

    by_id = client.get_order_by_id(limit.id)
    by_client = client.get_order_by_client_id("compat-limit-1")
    assert by_id.id == limit.id == by_client.id, (by_id.id, limit.id, by_client.id)

    all_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    summary["orders_all"] = len(all_orders)
    # alpaca-py sends booleans as Python spells them (nested=True), a
    # datetime as isoformat, symbols comma-joined.
    nested = client.get_orders(GetOrdersRequest(
        status=QueryOrderStatus.ALL, nested=True, symbols=["AAPL", "MSFT"],
        after=datetime.datetime(2000, 1, 1)))
    assert len(nested) == len(all_orders), (len(nested), len(all_orders))
    # expires_at is a real time after the order was made.
    assert by_id.expires_at is not None and by_id.expires_at > by_id.created_at, by_id.expires_at

    status, message = refusal(client, MarketOrderRequest(
        symbol="NVDA", qty=1_000_000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    summary["refused_status"] = status
    summary["refused_message"] = message

    if not filled.wait(STREAM_WAIT_SECS):
        raise AssertionError(f"no fill event on the stream within {STREAM_WAIT_SECS}s: {events}")
    summary["stream_events"] = sorted({e["event"] for e in events})

    # Let the market orders finish before canceling everything still open.
    for order_id in (market.id, sell.id):
        for _ in range(300):
            if client.get_order_by_id(order_id).status == OrderStatus.FILLED:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"market order {order_id} did not fill")

    client.cancel_order_by_id(limit.id)
    for _ in range(100):
        if client.get_order_by_id(limit.id).status == OrderStatus.CANCELED:
            break
        time.sleep(0.1)
    summary["canceled_status"] = client.get_order_by_id(limit.id).status.value
    replace(client, events, summary)

    resting = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00))
    canceled = client.cancel_orders()
    summary["cancel_all"] = [c.status for c in canceled]
    summary["cancel_all_ids"] = [str(c.id) for c in canceled]
    assert str(resting.id) in summary["cancel_all_ids"]

    open_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    summary["orders_open_after_cancel_all"] = len(
        [o for o in open_orders if o.status not in (OrderStatus.PENDING_CANCEL,)])

    fractional(client, summary)
    trading_day(client, summary)

    account = client.get_account()
    summary["account_cash"] = account.cash
    summary["account_status"] = account.status.value

    positions = client.get_all_positions()
    summary["positions"] = {p.symbol: p.qty for p in positions}
    summary["aapl_position"] = client.get_open_position("AAPL").qty
    manage_positions(client, summary)

    stream.stop()
    thread.join(timeout=10)
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - any failure is the test's failure
        traceback.print_exc()
        sys.exit(1)
