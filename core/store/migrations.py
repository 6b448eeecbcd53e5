"""Numbered schema migrations, applied in order of their number and recorded in ``_migrations``.

Add a migration by appending ``@migration def m00N_what_it_does(db)`` to this file; never edit one
that has shipped. They run sorted by name (the number), whatever their order in the file.
``tests/test_store.py`` applies them all to a blank database.
"""

from __future__ import annotations

from typing import Callable

import sqlite_utils

MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []


def migration(function: Callable[[sqlite_utils.Database], None]):
    MIGRATIONS.append(function)
    MIGRATIONS.sort(key=lambda known: known.__name__)
    return function


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE cycles (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running','trained','evaluated','done','failed')),
            parent_id INTEGER REFERENCES cycles(id),
            task TEXT NOT NULL,
            seed INTEGER NOT NULL,
            config TEXT NOT NULL,              -- JSON snapshot of the validated config
            plugins TEXT NOT NULL,             -- JSON: [{name, version, builtin}]
            components TEXT,                   -- JSON: the components used, with options
            base_model TEXT NOT NULL,
            start_model TEXT NOT NULL,         -- what training started from (base or promoted)
            model_path TEXT,
            run_dir TEXT,
            stats TEXT,                        -- JSON: counts per split, cleaning report, ...
            timings TEXT,                      -- JSON: seconds per stage
            error TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE TABLE split_assignments (
            split_key TEXT PRIMARY KEY,        -- normalised input or group
            split TEXT NOT NULL CHECK (split IN ('train','validation','test','review')),
            first_cycle_id INTEGER REFERENCES cycles(id)
        );
        CREATE TABLE examples (
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            id TEXT NOT NULL,
            split TEXT NOT NULL,
            input TEXT NOT NULL,
            target TEXT,
            weight REAL NOT NULL DEFAULT 1.0,
            source TEXT,
            provenance TEXT NOT NULL,
            PRIMARY KEY (cycle_id, id, split)
        );
        CREATE TABLE metrics (
            id INTEGER PRIMARY KEY,
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            split TEXT NOT NULL,               -- train, validation, test, human
            name TEXT NOT NULL,
            value REAL NOT NULL,
            step INTEGER,                      -- NULL for the final figure of the cycle
            created_at TEXT NOT NULL
        );
        CREATE INDEX metrics_cycle ON metrics(cycle_id, split, name);
        CREATE TABLE outputs (
            id INTEGER PRIMARY KEY,
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            example_id TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            reference TEXT,
            confidence REAL,
            scores TEXT,                       -- JSON label -> probability
            created_at TEXT NOT NULL
        );
        CREATE INDEX outputs_cycle ON outputs(cycle_id);
        CREATE TABLE review_queue (
            id INTEGER PRIMARY KEY,
            output_id INTEGER NOT NULL UNIQUE REFERENCES outputs(id),
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            priority INTEGER NOT NULL,         -- 0 first
            sampler TEXT NOT NULL,
            ratings_needed INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','done')),
            created_at TEXT NOT NULL
        );
        CREATE INDEX review_queue_open ON review_queue(status, priority);
        CREATE TABLE reviewers (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('expert','admin')),
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE ratings (
            id INTEGER PRIMARY KEY,
            output_id INTEGER NOT NULL REFERENCES outputs(id),
            reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
            verdict TEXT NOT NULL CHECK (verdict IN ('approve','reject','skip','unclear')),
            score INTEGER CHECK (score BETWEEN 1 AND 5),
            corrected TEXT,
            comment TEXT,
            supersedes_id INTEGER UNIQUE REFERENCES ratings(id),
            created_at TEXT NOT NULL
        );
        CREATE INDEX ratings_output ON ratings(output_id);
        CREATE TRIGGER ratings_are_append_only_update BEFORE UPDATE ON ratings
        BEGIN SELECT RAISE(ABORT, 'ratings are append-only: add a rating that supersedes it'); END;
        CREATE TRIGGER ratings_are_append_only_delete BEFORE DELETE ON ratings
        BEGIN SELECT RAISE(ABORT, 'ratings are append-only: add a rating that supersedes it'); END;
        CREATE TABLE feedback_usage (
            id INTEGER PRIMARY KEY,
            rating_id INTEGER NOT NULL REFERENCES ratings(id),
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            policy TEXT NOT NULL,
            example_id TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX feedback_usage_rating ON feedback_usage(rating_id);
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            cycle_id INTEGER NOT NULL UNIQUE REFERENCES cycles(id),
            path TEXT NOT NULL,
            metrics TEXT NOT NULL,             -- JSON {split: {name: value}}
            stage TEXT NOT NULL CHECK (stage IN ('candidate','promoted','rejected','archived')),
            reasons TEXT,                      -- JSON list: why the gate decided as it did
            created_at TEXT NOT NULL
        );
        """
    )
