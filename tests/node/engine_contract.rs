//! The engine contract, run against the in-memory engine.

use std::sync::Arc;

use rookery::engine::{Delivery, Engine, MemoryEngine};

async fn memory_engine(history_len: usize, delivery: Arc<dyn Delivery>) -> Arc<dyn Engine> {
    Arc::new(MemoryEngine::new(history_len, delivery))
}

rookery::engine_contract_tests!(memory_engine);
