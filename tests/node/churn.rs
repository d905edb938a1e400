//! A node holds nothing back after sessions come and go.

use serde_json::json;

use crate::helpers::{Endpoint, spawn_app};

#[actix_web::test]
async fn sessions_and_rooms_return_to_zero_after_churn() {
    let app = spawn_app(&[]).await;
    for cycle in 0..60 {
        let mut client = app.client(&format!("user{}", cycle % 7)).await;
        let room = format!("room{}", cycle % 5);
        client.join(&room).await;
        client.send(json!({"type":"send","room":room,"body":"x"})).await;
        if cycle % 2 == 0 {
            client.request(json!({"type":"leave","room":room})).await;
        }
    }
    app.eventually("sessions to close", |node| node.connection_count() == 0).await;
    app.eventually("rooms to stop", |node| node.directory.is_empty()).await;
    app.eventually("the gauges to read zero", |node| {
        let metrics = node.metrics.render();
        metrics.contains("rookery_connections 0\n") && metrics.contains("rookery_rooms 0\n")
    })
    .await;
    for n in 0..5 {
        let room = rookery::domain::RoomName::parse(&format!("room{n}")).expect("room");
        let members = app.node.engine.members(&room).await.expect("members");
        assert!(members.is_empty(), "presence of room{n} is empty: {members:?}");
    }
}
