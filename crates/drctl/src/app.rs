//! The local stack's application tier: the MueJam API's fleet, load
//! balancer and deployment (see `muejam_app::platform`).

use dr_core::DrResult;
use dr_local::LocalControlPlane;
use muejam_app::catalog::AppConfig;
use muejam_app::LocalAppPlatform;

use crate::seed;

/// Instances the stack starts with, and the most the group may hold.
pub const DESIRED: u32 = 2;
pub const MAX_SIZE: u32 = 6;

pub fn config(platform: &LocalControlPlane) -> AppConfig {
    AppConfig {
        hosted_zone: seed::HOSTED_ZONE.to_owned(),
        database_record: seed::DATABASE_RECORD.to_owned(),
        database: dr_local::DEFAULT_DATABASE.to_owned(),
        app_secret_id: seed::APP_SECRET.to_owned(),
        migration_secret_id: seed::DATABASE_SECRET.to_owned(),
        ca_file: platform.ca_file(),
    }
}

/// Brings the app tier up: its configuration, the first release's
/// migrations (once), the instances and the load balancer.
pub async fn up(platform: &LocalControlPlane) -> DrResult<LocalAppPlatform> {
    config(platform).write(platform.home())?;
    let app = LocalAppPlatform::new(platform.home())?;
    let first = !app.exists();
    app.ensure(DESIRED, MAX_SIZE)?;
    if first {
        let known = app
            .read()?
            .deployments
            .values()
            .next()
            .and_then(|d| d.current_revision().ok().map(|r| r.template.migrations))
            .unwrap_or(0);
        muejam_app::migrate::migrate_home(
            platform.home(),
            known,
            &muejam_app::migrate::MigrationTarget::Latest,
        )
        .await?;
    }
    Ok(app)
}
