//! What every request handler shares: the application and this
//! instance's fan-out of trade updates to its `/stream` clients.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::app::App;
use crate::store::trade_updates::TradeUpdateNote;

/// Trade updates buffered per instance for slow stream clients; a client
/// that falls further behind is told so and disconnected.
pub const TRADE_UPDATE_BUFFER: usize = 4096;

#[derive(Debug)]
pub struct AppState {
    pub app: Arc<App>,
    /// Trade updates for this instance's `/stream` clients.
    pub trade_updates: broadcast::Sender<TradeUpdateNote>,
}

impl AppState {
    pub fn new(app: Arc<App>) -> Arc<Self> {
        Arc::new(Self {
            app,
            trade_updates: broadcast::channel(TRADE_UPDATE_BUFFER).0,
        })
    }
}
