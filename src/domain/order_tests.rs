//! Tests of `src/domain/order.rs`.

use super::*;
use rust_decimal_macros_free::dec;

/// `Decimal` literals without a macro crate.
mod rust_decimal_macros_free {
    pub fn dec(text: &str) -> rust_decimal::Decimal {
        text.parse().expect("decimal literal")
    }
}

#[test]
fn qty_must_be_positive_bounded_and_at_most_nine_places() {
    assert!(Qty::parse(dec("10")).is_ok());
    assert_eq!(Qty::parse(dec("0")).unwrap_err().field, "qty");
    assert!(Qty::parse(dec("-1")).is_err());
    assert!(Qty::parse(dec("1.5")).unwrap().is_fractional());
    assert!(!Qty::parse(dec("2.000")).unwrap().is_fractional());
    assert_eq!(
        Qty::parse(dec("0.123456789")).unwrap().value(),
        dec("0.123456789")
    );
    let ten_places = Qty::parse(dec("0.1234567891")).unwrap_err();
    assert_eq!(ten_places.field, "qty");
    assert!(
        ten_places.problem.contains("9 decimal places"),
        "{ten_places}"
    );
    assert!(Qty::parse(dec("0.0000000001")).is_err());
    assert!(Qty::parse(dec("10000001")).is_err());
    assert_eq!(Qty::parse(dec("10.000")).unwrap().value().to_string(), "10");
}

#[test]
fn limit_price_is_on_the_tick() {
    assert!(LimitPrice::parse(dec("190.12")).is_ok());
    assert!(LimitPrice::parse(dec("190.123")).is_err());
    assert!(LimitPrice::parse(dec("0.1234")).is_ok());
    assert!(LimitPrice::parse(dec("0.12345")).is_err());
    assert!(LimitPrice::parse(dec("0")).is_err());
}

#[test]
fn limit_orders_need_a_price_and_market_orders_refuse_one() {
    let base = |t, p: Option<LimitPrice>| {
        NewOrder::new(
            Symbol::parse("aapl").unwrap(),
            Side::Buy,
            t,
            TimeInForce::Day,
            Qty::parse(dec("1")).unwrap(),
            Prices {
                limit: p,
                ..Prices::default()
            },
            None,
        )
    };
    assert!(base(OrderType::Limit, None).is_err());
    assert!(
        base(
            OrderType::Market,
            Some(LimitPrice::parse(dec("1")).unwrap())
        )
        .is_err()
    );
    let ok = base(OrderType::Market, None).unwrap();
    assert_eq!(ok.symbol.as_str(), "AAPL");
}

fn price(text: &str) -> LimitPrice {
    LimitPrice::parse(dec(text)).unwrap()
}

fn stop_order(
    order_type: OrderType,
    tif: TimeInForce,
    prices: Prices,
) -> Result<NewOrder, InvalidField> {
    NewOrder::new(
        Symbol::parse("AAPL").unwrap(),
        Side::Sell,
        order_type,
        tif,
        Qty::parse(dec("1")).unwrap(),
        prices,
        None,
    )
}

#[test]
fn each_stop_type_takes_exactly_its_prices_and_day_or_gtc() {
    let stop = Prices {
        stop: Some(price("90")),
        ..Prices::default()
    };
    let stop_limit = Prices {
        stop: Some(price("90")),
        limit: Some(price("89.5")),
        ..Prices::default()
    };
    let trail = Prices {
        trail: Some(Trail::Percent(TrailPercent::parse(dec("1.5")).unwrap())),
        ..Prices::default()
    };
    let day = TimeInForce::Day;
    assert!(stop_order(OrderType::Stop, day, stop).is_ok());
    assert!(stop_order(OrderType::Stop, TimeInForce::Gtc, stop).is_ok());
    assert!(stop_order(OrderType::StopLimit, day, stop_limit).is_ok());
    assert!(stop_order(OrderType::TrailingStop, day, trail).is_ok());
    let field = |r: Result<NewOrder, InvalidField>| r.unwrap_err().field;
    assert_eq!(
        field(stop_order(OrderType::Stop, day, Prices::default())),
        "stop_price"
    );
    assert_eq!(
        field(stop_order(OrderType::Stop, day, stop_limit)),
        "limit_price"
    );
    assert_eq!(
        field(stop_order(OrderType::StopLimit, day, stop)),
        "limit_price"
    );
    assert_eq!(
        field(stop_order(OrderType::TrailingStop, day, stop)),
        "stop_price"
    );
    assert_eq!(
        field(stop_order(OrderType::TrailingStop, day, Prices::default())),
        "trail_price"
    );
    assert_eq!(
        field(stop_order(OrderType::Limit, day, trail)),
        "limit_price"
    );
    assert_eq!(
        field(stop_order(OrderType::Market, day, trail)),
        "trail_percent"
    );
    assert_eq!(
        field(stop_order(OrderType::Stop, TimeInForce::Ioc, stop)),
        "time_in_force"
    );
    assert!(TrailPercent::parse(dec("100")).is_err());
    assert!(TrailPercent::parse(dec("0")).is_err());
    assert!(TrailPercent::parse(dec("0.00001")).is_err());
    assert_eq!(
        LimitPrice::parse_as("stop_price", dec("1.001"))
            .unwrap_err()
            .field,
        "stop_price"
    );
}

#[test]
fn a_stop_orders_terms_are_in_its_fingerprint_and_others_keep_theirs() {
    let stop = |p: &str| {
        stop_order(
            OrderType::Stop,
            TimeInForce::Day,
            Prices {
                stop: Some(price(p)),
                ..Prices::default()
            },
        )
        .unwrap()
        .fingerprint()
    };
    assert_ne!(stop("90"), stop("91"));
    assert_eq!(stop("90"), stop("90.00"));
    // A market order's digest is the one earlier versions stored.
    let market = stop_order(OrderType::Market, TimeInForce::Day, Prices::default()).unwrap();
    let v1 = hex::encode(Sha256::digest(b"v1|AAPL|sell|market|day|1||"));
    assert_eq!(market.fingerprint(), v1);
}

#[test]
fn fingerprint_ignores_spelling_but_not_meaning() {
    let make = |qty: &str| {
        NewOrder::new(
            Symbol::parse("AAPL").unwrap(),
            Side::Buy,
            OrderType::Market,
            TimeInForce::Day,
            Qty::parse(dec(qty)).unwrap(),
            Prices::default(),
            None,
        )
        .unwrap()
    };
    assert_eq!(make("10").fingerprint(), make("10.00").fingerprint());
    assert_ne!(make("10").fingerprint(), make("11").fingerprint());
}

#[test]
fn enums_parse_their_wire_names_and_name_the_field() {
    assert_eq!(TimeInForce::parse("fok").unwrap(), TimeInForce::Fok);
    let error = parse_field::<Side>("short").unwrap_err();
    assert_eq!(error.field, "side");
    assert!(error.problem.contains("buy, sell"));
}

#[test]
fn a_fractional_qty_is_a_market_day_order_only() {
    let order = |t, tif, limit: Option<&str>| {
        NewOrder::new(
            Symbol::parse("AAPL").unwrap(),
            Side::Buy,
            t,
            tif,
            Qty::parse(dec("0.5")).unwrap(),
            Prices {
                limit: limit.map(price),
                ..Prices::default()
            },
            None,
        )
    };
    let ok = order(OrderType::Market, TimeInForce::Day, None).unwrap();
    assert_eq!(ok.amount.qty().map(Qty::value), Some(dec("0.5")));
    let limit = order(OrderType::Limit, TimeInForce::Day, Some("10")).unwrap_err();
    assert_eq!(limit.field, "qty");
    assert!(limit.problem.contains("market orders only"), "{limit}");
    for tif in [TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Opg] {
        let refused = order(OrderType::Market, tif, None).unwrap_err();
        assert_eq!(refused.field, "time_in_force", "{tif}");
        assert!(refused.problem.contains("fractional"), "{refused}");
    }
}
