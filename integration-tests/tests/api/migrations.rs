use integration_tests::{empty_database, fresh_database};
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
            migrate::run(&mut client).await.map_err(|err| err.to_string())
        })
    });
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap().unwrap());
    }
    let names: Vec<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
    assert_eq!(applied, names, "each migration applied by exactly one replica");
    let client = connect(&settings).await;
    let recorded: i64 =
        client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
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
    assert!(matches!(err, MigrateError::Edited(ref name) if name == MIGRATIONS[0].0), "{err}");
    // The advisory lock was released despite the error: another run does not hang.
    let mut other = connect(&settings).await;
    let again =
        tokio::time::timeout(std::time::Duration::from_secs(10), migrate::run(&mut other)).await;
    assert!(matches!(again, Ok(Err(MigrateError::Edited(_)))));
}

#[tokio::test]
async fn a_database_migrated_before_the_comments_were_reworded_is_up_to_date() {
    let settings = empty_database().await;
    let mut client = connect(&settings).await;
    migrate::run(&mut client).await.unwrap();
    // The checksums the release before 0006 recorded for the files whose comments changed.
    let earlier = [
        ("0001_foundation.sql", "227463293e5461ace5266593ff1c2524326e97279e6ed2f54e6b432fcb87ebaa"),
        (
            "0005_reconciliation.sql",
            "49eb2d2efb78a1cc7cebcf87489f7d639d0bab8bd66e48b57ae621a79b323c82",
        ),
    ];
    for (name, sha256) in earlier {
        client
            .execute("UPDATE schema_migrations SET sha256 = $2 WHERE name = $1", &[&name, &sha256])
            .await
            .unwrap();
    }
    assert!(migrate::run(&mut client).await.unwrap().is_empty());
}

/// The tables the service may only read and append to. A later migration that adds an
/// append-only table (an audit trail, seals) revokes the same privileges and lists it here.
const APPEND_ONLY_TABLES: &[&str] = &[
    "ledger_transactions",
    "ledger_entries",
    "bank_callbacks",
    "callback_exceptions",
    "ledger_seals",
    "audit_log",
];

/// A connection to a fresh migrated database as the service role (what the app uses).
async fn service_connection() -> tokio_postgres::Client {
    connect(&as_service_role_settings(&fresh_database().await)).await
}

fn as_service_role_settings(owner: &tokio_postgres::Config) -> tokio_postgres::Config {
    integration_tests::as_service_role(owner)
}

/// Runs `sql` and returns its SQLSTATE, or None when it succeeded.
async fn sqlstate(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    match client.batch_execute(sql).await {
        Ok(()) => None,
        Err(err) => Some(
            err.code()
                .unwrap_or_else(|| panic!("{sql}: not a database error: {err}"))
                .code()
                .to_owned(),
        ),
    }
}

#[tokio::test]
async fn the_service_role_cannot_change_or_remove_the_ledger_nor_switch_its_guards_off() {
    let service = service_connection().await;
    let mut refused = Vec::new();
    for table in APPEND_ONLY_TABLES {
        // Any column but `id`, which is GENERATED ALWAYS and so refused for another reason.
        let column = match *table {
            "ledger_entries" => "debit",
            "ledger_transactions" => "kind",
            "ledger_seals" => "hash",
            "audit_log" => "detail",
            _ => "bank_code",
        };
        refused.extend([
            format!("UPDATE {table} SET {column} = {column}"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
            format!("ALTER TABLE {table} DISABLE TRIGGER ALL"),
            format!("ALTER TABLE {table} DISABLE TRIGGER USER"),
            format!("DROP TABLE {table}"),
            format!("CREATE TRIGGER sneaky AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"),
        ]);
    }
    refused.extend(
        [
            "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
            "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
            "DROP FUNCTION ledger_refuse_change() CASCADE",
            "CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "CREATE TABLE public.shadow (id int)",
            "SET session_replication_role = replica",
            "INSERT INTO schema_migrations (name, sha256) VALUES ('9999_x.sql', 'x')",
            "DELETE FROM schema_migrations",
            "CREATE ROLE intruder",
            "ALTER ROLE paygate_service SUPERUSER",
        ]
        .map(str::to_owned),
    );
    for sql in &refused {
        assert_eq!(
            sqlstate(&service, sql).await.as_deref(),
            Some("42501"),
            "refused as insufficient_privilege: {sql}"
        );
    }
    // The guards are still in place (nothing above half-succeeded).
    let enabled: i64 = service
        .query_one(
            "SELECT count(*) FROM pg_trigger
             WHERE tgname LIKE 'ledger_%' AND tgenabled = 'O' AND NOT tgisinternal",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(enabled, 8, "the ledger's six triggers and the seals' two are enabled");
}

#[tokio::test]
async fn the_service_role_may_read_and_append_to_the_ledger_and_owns_nothing() {
    let service = service_connection().await;
    for table in APPEND_ONLY_TABLES {
        assert_eq!(
            sqlstate(&service, &format!("SELECT count(*) FROM {table}")).await,
            None,
            "SELECT on {table}"
        );
    }
    // Each insert is allowed and then fails on a foreign key (23503), not on a privilege: the
    // privilege check comes first.
    let inserts = [
        "INSERT INTO ledger_transactions (kind, callback_id, payment_id) VALUES ('payment', -1, 'none')",
        "INSERT INTO ledger_entries (transaction_id, account, debit, credit) VALUES (-1, 'bank:VCB', 1, 0)",
        "INSERT INTO bank_callbacks (bank_code, bank_txn_id, payment_id, amount, currency, status, paid_at, outcome)
         VALUES ('NOBANK', 't1', 'none', 1, 'VND', 'succeeded', now(), 'paid')",
        "INSERT INTO callback_exceptions (bank_code, bank_txn_id, payment_id, amount, currency, reason)
         VALUES ('NOBANK', 't1', 'none', 1, 'VND', 'payment_not_found')",
    ];
    for sql in inserts {
        assert_eq!(sqlstate(&service, sql).await.as_deref(), Some("23503"), "{sql}");
    }
    // Every table of the schema is readable and writable (rows) by the service, except what is
    // append-only or the migrations' own record.
    let rows = service
        .query(
            "SELECT c.relname,
                    has_table_privilege(current_user, c.oid, 'SELECT'),
                    has_table_privilege(current_user, c.oid, 'INSERT'),
                    has_table_privilege(current_user, c.oid, 'UPDATE'),
                    has_table_privilege(current_user, c.oid, 'DELETE'),
                    has_table_privilege(current_user, c.oid, 'TRUNCATE')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() > APPEND_ONLY_TABLES.len());
    for row in rows {
        let table: String = row.get(0);
        let privileges: [bool; 5] = [row.get(1), row.get(2), row.get(3), row.get(4), row.get(5)];
        let expected = if APPEND_ONLY_TABLES.contains(&table.as_str()) {
            [true, true, false, false, false]
        } else if table == "schema_migrations" {
            [true, false, false, false, false]
        } else {
            [true, true, true, true, false]
        };
        assert_eq!(privileges, expected, "SELECT, INSERT, UPDATE, DELETE, TRUNCATE on {table}");
    }
    let owned: i64 = service
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
                  + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
                  + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
                  + (SELECT count(*) FROM pg_type WHERE typowner = r.oid)
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0, "the service role owns nothing");
    let attributes = service
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    for index in 0..5 {
        assert!(!attributes.get::<_, bool>(index), "attribute {index} is off");
    }
}

#[tokio::test]
async fn tables_of_later_migrations_get_the_ordinary_grants_by_default() {
    let owner_settings = fresh_database().await;
    let owner = connect(&owner_settings).await;
    owner
        .batch_execute(
            "CREATE TABLE later_table (id bigint GENERATED ALWAYS AS IDENTITY, note text)",
        )
        .await
        .unwrap();
    let service = connect(&as_service_role_settings(&owner_settings)).await;
    for sql in [
        "INSERT INTO later_table (note) VALUES ('x')",
        "UPDATE later_table SET note = 'y'",
        "SELECT * FROM later_table",
        "DELETE FROM later_table",
    ] {
        assert_eq!(sqlstate(&service, sql).await, None, "{sql}");
    }
    assert_eq!(sqlstate(&service, "TRUNCATE later_table").await.as_deref(), Some("42501"));
}

#[tokio::test]
async fn the_service_role_can_tell_an_up_to_date_schema_but_cannot_migrate() {
    // Up to date: migrating as the service role only reads what is applied.
    let owner = fresh_database().await;
    let mut service = connect(&as_service_role_settings(&owner)).await;
    assert!(migrate::run(&mut service).await.unwrap().is_empty());
    // Nothing applied yet: the service role may not create the schema.
    let empty = empty_database().await;
    let mut service = connect(&as_service_role_settings(&empty)).await;
    let err = migrate::run(&mut service).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
}
