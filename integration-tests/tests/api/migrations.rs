use integration_tests::empty_database;
use paygate::db::migrate::{self, MigrateError, MIGRATIONS};

async fn connect(settings: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = settings.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn replicas_migrating_at_once_apply_each_file_exactly_once() {
    let settings = empty_database().await;
    let runs = (0..4).map(|_| {
        let settings = settings.clone();
        tokio::spawn(async move {
            let mut client = connect(&settings).await;
            migrate::run(&mut client)
                .await
                .map_err(|err| err.to_string())
        })
    });
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap().unwrap());
    }
    let names: Vec<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        applied, names,
        "each migration applied by exactly one replica"
    );
    let client = connect(&settings).await;
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded as usize, MIGRATIONS.len());
    // A later run has nothing left to do.
    let mut client = connect(&settings).await;
    assert!(migrate::run(&mut client).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_migration_edited_after_it_was_applied_is_refused() {
    let settings = empty_database().await;
    let mut client = connect(&settings).await;
    migrate::run(&mut client).await.unwrap();
    client
        .execute(
            "UPDATE schema_migrations SET sha256 = 'edited' WHERE name = $1",
            &[&MIGRATIONS[0].0],
        )
        .await
        .unwrap();
    let err = migrate::run(&mut client).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Edited(ref name) if name == MIGRATIONS[0].0),
        "{err}"
    );
    // The advisory lock was released despite the error: another run does not hang.
    let mut other = connect(&settings).await;
    let again =
        tokio::time::timeout(std::time::Duration::from_secs(10), migrate::run(&mut other)).await;
    assert!(matches!(again, Ok(Err(MigrateError::Edited(_)))));
}
