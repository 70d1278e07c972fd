// Runs the official Alpaca TypeScript SDK (@alpacahq/alpaca-trade-api,
// pinned by scripts/node-sdk), unmodified but for its base path, against
// orderd: clock, calendar, assets, an order, a replace. Prints a JSON summary on the
// last line; any failure exits non-zero with the error.
//
// Environment: ORDERD_URL, APCA_API_KEY_ID, APCA_API_SECRET_KEY.
"use strict";

const { trading, ValidationError } = require("@alpacahq/alpaca-trade-api");

function assert(condition, message) {
  if (!condition) {
    throw new Error("assertion failed: " + message);
  }
}

// The order `id` once `done(order)` holds; fails after 15 s.
async function waitFor(orders, id, done) {
  let order = await orders.getOrderByOrderID({ orderId: id });
  for (let i = 0; i < 150 && !done(order); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    order = await orders.getOrderByOrderID({ orderId: id });
  }
  assert(done(order), "order " + id + " never got there: " + JSON.stringify(order));
  return order;
}

// A resting limit buy replaced through the SDK's patchOrderByOrderId (a
// larger total qty, a new limit, the replacement's client_order_id): the
// answer is the SDK's Order model of the replacement; the original ends
// replaced, naming it; replacing the replaced original is the SDK's
// ValidationError with status 422; the replacement cancels.
async function replace(orders, summary) {
  const original = await orders.postOrder({
    postOrderRequest: {
      symbol: "AAPL", qty: "1", side: "buy", type: "limit", timeInForce: "gtc", limitPrice: "1.00",
    },
  });
  await waitFor(orders, original.id, (o) => o.status === "new");
  const clientOrderId = "ts-replace-" + Date.now();
  const next = await orders.patchOrderByOrderId({
    orderId: original.id,
    patchOrderRequest: { qty: "3", limitPrice: "2.00", clientOrderId },
  });
  assert(next.id && next.id !== original.id, "a new id: " + JSON.stringify(next));
  assert(next.replaces === original.id, "replaces the original: " + JSON.stringify(next));
  assert(next.clientOrderId === clientOrderId, "its client_order_id: " + next.clientOrderId);
  assert(next.createdAt instanceof Date && !isNaN(next.createdAt), "created_at " + next.createdAt);
  // The answer may be pending_new on a slow machine: the venue works the
  // replacement soon after.
  const working = await waitFor(orders, next.id, (o) => o.status === "new");
  summary.replacement = [next.qty, next.limitPrice, working.status, next.type, next.timeInForce];
  const replaced = await waitFor(orders, original.id, (o) => o.status === "replaced");
  assert(replaced.replacedBy === next.id, "replaced_by " + replaced.replacedBy + " not " + next.id);
  assert(replaced.replacedAt instanceof Date && !isNaN(replaced.replacedAt), "replaced_at " + replaced.replacedAt);
  summary.replaced = [replaced.status, replaced.qty, replaced.limitPrice];
  try {
    await orders.patchOrderByOrderId({ orderId: original.id, patchOrderRequest: { limitPrice: "3.00" } });
    summary.replace_replaced = null;
  } catch (error) {
    summary.replace_replaced = [error instanceof ValidationError, error.status, error.message];
  }
  await orders.deleteOrderByOrderID({ orderId: next.id });
  summary.replacement_canceled = (await waitFor(orders, next.id, (o) => o.status === "canceled")).status;
}

async function main() {
  const configuration = new trading.Configuration({
    keyId: process.env.APCA_API_KEY_ID,
    secret: process.env.APCA_API_SECRET_KEY,
    basePath: process.env.ORDERD_URL,
    retry: false,
  });
  const summary = {};

  const clock = await new trading.ClockApi(configuration).legacyClock();
  assert(typeof clock.isOpen === "boolean", "clock.isOpen " + JSON.stringify(clock));
  assert(clock.nextClose instanceof Date && !isNaN(clock.nextClose), "clock.nextClose");
  assert(clock.nextOpen instanceof Date && !isNaN(clock.nextOpen), "clock.nextOpen");
  summary.clock_is_open = clock.isOpen;

  const today = new Date();
  const inAMonth = new Date(today.getTime() + 31 * 24 * 3600 * 1000);
  const calendar = await new trading.CalendarApi(configuration).legacyCalendar({
    start: today,
    end: inAMonth,
  });
  assert(Array.isArray(calendar) && calendar.length > 0, "calendar days");
  assert(/^\d\d:\d\d$/.test(calendar[0].open), "calendar open " + JSON.stringify(calendar[0]));
  summary.calendar_days = calendar.length;

  const assets = new trading.AssetsApi(configuration);
  const active = await assets.getV2Assets({ status: "active" });
  const listed = active.find((a) => a.symbol === "AAPL");
  assert(listed && listed.tradable === true, "AAPL listed and tradable");
  const aapl = await assets.getV2AssetsSymbolOrAssetId({ symbolOrAssetId: "AAPL" });
  assert(aapl.id === listed.id, "the same asset by symbol");
  const byId = await assets.getV2AssetsSymbolOrAssetId({ symbolOrAssetId: listed.id });
  assert(byId.symbol === "AAPL", "the same asset by id");
  summary.assets = active.length;

  const orders = new trading.OrdersApi(configuration);
  const placed = await orders.postOrder({
    postOrderRequest: {
      symbol: "AAPL",
      qty: "1",
      side: "buy",
      type: "market",
      timeInForce: "day",
      clientOrderId: "ts-sdk-" + Date.now(),
    },
  });
  assert(placed.id, "an order id");
  const fetched = await orders.getOrderByOrderID({ orderId: placed.id });
  assert(fetched.id === placed.id, "the same order");
  assert(fetched.assetId === listed.id, "the order's asset is the listed one");
  assert(fetched.expiresAt instanceof Date, "expires_at " + fetched.expiresAt);
  summary.order_status = fetched.status;
  await replace(orders, summary);

  // Half a share of NVDA bought and sold (the SDK's qty is a string), read
  // back through the SDK's Order model; the position is empty again.
  summary.fractional = [];
  for (const side of ["buy", "sell"]) {
    const fraction = await orders.postOrder({
      postOrderRequest: { symbol: "NVDA", qty: "0.5", side, type: "market", timeInForce: "day" },
    });
    assert(fraction.qty === "0.5" && !fraction.notional, "a fractional order: " + JSON.stringify(fraction));
    let seen = fraction;
    for (let i = 0; i < 150 && seen.status !== "filled"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      seen = await orders.getOrderByOrderID({ orderId: fraction.id });
    }
    let nvda = side === "buy" ? "0" : "0.5";
    const want = side === "buy" ? "0.5" : "0";
    for (let i = 0; i < 150 && nvda !== want; i++) {
      const all = await new trading.PositionsApi(configuration).getAllOpenPositions();
      nvda = (all.find((p) => p.symbol === "NVDA") || { qty: "0" }).qty;
      if (nvda !== want) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    summary.fractional.push([side, seen.status, seen.filledQty, nvda]);
  }

  // $100 of NVDA by notional: notional set and qty null in the SDK's
  // Order model until filled; then exactly the qty the venue decided sold.
  const spend = await orders.postOrder({
    postOrderRequest: { symbol: "NVDA", notional: "100", side: "buy", type: "market", timeInForce: "day" },
  });
  assert(spend.notional === "100", "a notional order: " + JSON.stringify(spend));
  assert(spend.qty == null || spend.status === "filled", "qty null until filled: " + JSON.stringify(spend));
  let spent = spend;
  for (let i = 0; i < 150 && spent.status !== "filled"; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    spent = await orders.getOrderByOrderID({ orderId: spend.id });
  }
  assert(spent.qty && spent.filledQty === spent.qty, "the venue's qty: " + JSON.stringify(spent));
  summary.notional = [spent.notional, spent.status];
  let nvdaHeld = "0";
  for (let i = 0; i < 150 && nvdaHeld !== spent.qty; i++) {
    const all = await new trading.PositionsApi(configuration).getAllOpenPositions();
    nvdaHeld = (all.find((p) => p.symbol === "NVDA") || { qty: "0" }).qty;
    if (nvdaHeld !== spent.qty) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const back = await orders.postOrder({
    postOrderRequest: { symbol: "NVDA", qty: spent.qty, side: "sell", type: "market", timeInForce: "day" },
  });
  for (let i = 0; i < 150 && nvdaHeld !== "0"; i++) {
    const all = await new trading.PositionsApi(configuration).getAllOpenPositions();
    nvdaHeld = (all.find((p) => p.symbol === "NVDA") || { qty: "0" }).qty;
    if (nvdaHeld !== "0") await new Promise((resolve) => setTimeout(resolve, 100));
  }
  summary.notional.push(back.qty === spent.qty, nvdaHeld);

  // Close part of the position, then all of it (canceling open orders).
  for (let i = 0; i < 100; i++) {
    if ((await orders.getOrderByOrderID({ orderId: placed.id })).status === "filled") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const positions = new trading.PositionsApi(configuration);
  let held = "0";
  for (let i = 0; i < 100 && held !== "3"; i++) {
    const all = await positions.getAllOpenPositions();
    held = (all.find((p) => p.symbol === "AAPL") || { qty: "0" }).qty;
    if (held !== "3") await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert(held === "3", "2 funded + 1 bought AAPL, got " + held);
  const partial = await positions.deleteOpenPosition({ symbolOrAssetId: "AAPL", qty: 1 });
  assert(partial.side === "sell" && partial.qty === "1", "a sell of 1: " + JSON.stringify(partial));
  summary.close_one_status = partial.status;
  await orders.postOrder({
    postOrderRequest: {
      symbol: "AAPL", qty: "1", side: "buy", type: "limit", timeInForce: "gtc", limitPrice: "1.00",
    },
  });
  // A stop order of each type, far from the price: they rest untriggered
  // until close-all cancels them.
  const stops = [
    { type: "stop", side: "sell", stopPrice: "1.00" },
    { type: "stop_limit", side: "buy", stopPrice: "5000", limitPrice: "5001" },
    { type: "trailing_stop", side: "sell", trailPercent: "50" },
  ];
  summary.stop_orders = [];
  for (const stop of stops) {
    const placedStop = await orders.postOrder({
      postOrderRequest: { symbol: "AAPL", qty: "1", timeInForce: "gtc", ...stop },
    });
    const seen = await orders.getOrderByOrderID({ orderId: placedStop.id });
    summary.stop_orders.push([seen.type, seen.status]);
  }
  const closedAll = await positions.deleteAllOpenPositions({ cancelOrders: true });
  assert(Array.isArray(closedAll) && closedAll.length >= 1, "close-all entries " + JSON.stringify(closedAll));
  summary.close_all = closedAll.map((c) => [c.symbol, c.status]);

  const activities = await new trading.AccountActivitiesApi(configuration).getAccountActivities({
    activityTypes: ["FILL"],
    direction: "asc",
    pageSize: 100,
  });
  assert(Array.isArray(activities) && activities.length >= 2, "fills " + JSON.stringify(activities));
  summary.fill_activities = activities.length;
  summary.first_activity = activities[0].activityType || activities[0].activity_type;

  console.log(JSON.stringify(summary));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
