-- oxide-migration
-- The operator tables of the `database` queue driver (docs/operations.md). Published by
-- `oxide vendor:publish queue`, applied by `oxide migrate`, beside the jobs table.
-- `scope` is the jobs table's name, so connections with tables of their own keep apart.
-- Times are integers of milliseconds since the Unix epoch (UTC), the database's clock.
--
--   queue_control  a queue's pause ("pause:<queue>"), and the restart mark ("restart");
--                  expires_at ends a timed pause (NULL: never)
--   queue_workers  one row per live worker: its JSON record, refreshed by its heartbeat;
--                  a row past expires_at is a worker that stopped beating, and is deleted
--   queue_metrics  counters that only grow, per queue and listener: "done", "failed", "retried",
--                  "secs" (run time), "b<i>" (runs in bucket i of the run-time histogram)
--   queue_minutes  per queue and Unix minute: "done", "failed", "retried", "secs"; old minutes are deleted

-- dialect: sqlite
CREATE TABLE IF NOT EXISTS queue_control (
    scope VARCHAR(64) NOT NULL,
    name VARCHAR(160) NOT NULL,
    value TEXT NOT NULL,
    expires_at BIGINT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS queue_workers (
    scope VARCHAR(64) NOT NULL,
    id VARCHAR(64) NOT NULL,
    record TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, id)
);
CREATE TABLE IF NOT EXISTS queue_metrics (
    scope VARCHAR(64) NOT NULL,
    queue VARCHAR(128) NOT NULL,
    listener VARCHAR(255) NOT NULL,
    name VARCHAR(16) NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (scope, queue, listener, name)
);
CREATE TABLE IF NOT EXISTS queue_minutes (
    scope VARCHAR(64) NOT NULL,
    queue VARCHAR(128) NOT NULL,
    minute BIGINT NOT NULL,
    name VARCHAR(16) NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (scope, queue, minute, name)
);

-- dialect: postgresql
CREATE TABLE IF NOT EXISTS queue_control (
    scope VARCHAR(64) NOT NULL,
    name VARCHAR(160) NOT NULL,
    value TEXT NOT NULL,
    expires_at BIGINT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS queue_workers (
    scope VARCHAR(64) NOT NULL,
    id VARCHAR(64) NOT NULL,
    record TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, id)
);
CREATE TABLE IF NOT EXISTS queue_metrics (
    scope VARCHAR(64) NOT NULL,
    queue VARCHAR(128) NOT NULL,
    listener VARCHAR(255) NOT NULL,
    name VARCHAR(16) NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, queue, listener, name)
);
CREATE TABLE IF NOT EXISTS queue_minutes (
    scope VARCHAR(64) NOT NULL,
    queue VARCHAR(128) NOT NULL,
    minute BIGINT NOT NULL,
    name VARCHAR(16) NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, queue, minute, name)
);

-- dialect: mysql
-- The binary collation: queue and listener names compare byte for byte, as everywhere else.
CREATE TABLE IF NOT EXISTS queue_control (
    scope VARCHAR(64) NOT NULL,
    name VARCHAR(160) NOT NULL,
    value LONGTEXT NOT NULL,
    expires_at BIGINT NULL,
    PRIMARY KEY (scope, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS queue_workers (
    scope VARCHAR(64) NOT NULL,
    id VARCHAR(64) NOT NULL,
    record LONGTEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS queue_metrics (
    scope VARCHAR(64) NOT NULL,
    queue VARCHAR(128) NOT NULL,
    listener VARCHAR(255) NOT NULL,
    name VARCHAR(16) NOT NULL,
    value DOUBLE NOT NULL,
    PRIMARY KEY (scope, queue, listener, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS queue_minutes (
    scope VARCHAR(64) NOT NULL,
    queue VARCHAR(128) NOT NULL,
    minute BIGINT NOT NULL,
    name VARCHAR(16) NOT NULL,
    value DOUBLE NOT NULL,
    PRIMARY KEY (scope, queue, minute, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
