//! The pinned client crate talks to the testkit's dev server: connecting performs GetSystemInfo,
//! and the raw WorkflowService call returns the server's version and capabilities.

use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::IntoRequest;
use temporalio_client::{Connection, ConnectionOptions, Url};
use temporalio_common::protos::temporal::api::workflowservice::v1::GetSystemInfoRequest;

#[tokio::test]
async fn dev_server_reports_version_and_capabilities() -> anyhow::Result<()> {
    let server = tempest_testkit::dev_server();
    let options = ConnectionOptions::new(Url::parse(&server.url())?)
        .identity("test")
        .client_name("tempest")
        .client_version("0.1.0")
        .build();
    let mut connection = Connection::connect(options).await?;
    assert!(connection.capabilities().is_some(), "connect caches the server's capabilities");

    let info = WorkflowService::get_system_info(&mut connection, GetSystemInfoRequest::default().into_request())
        .await?
        .into_inner();

    assert!(!info.server_version.is_empty(), "server version is empty: {info:?}");
    let capabilities = info.capabilities.expect("the dev server reports capabilities");
    assert!(capabilities.sdk_metadata, "{capabilities:?}");
    assert!(capabilities.signal_and_query_header, "{capabilities:?}");
    Ok(())
}
