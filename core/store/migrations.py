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


@migration
def m002_review_loop(db: sqlite_utils.Database) -> None:
    """Pairwise ratings, pair items in the review queue, queue indexes, single sign-on emails.

    A pairwise rating is a row of ``ratings`` like any other (append-only, superseding, traced in
    ``feedback_usage``): ``output_id`` is the newer cycle's output, ``pair_output_id`` the older
    cycle's output for the same input, ``preferred_output_id`` the one the expert preferred (NULL:
    neither), ``score``/``pair_score`` the optional 1-5 scores of each, and ``left_output_id`` the
    one shown on the left (sides are shuffled; this keeps position bias measurable).

    ``review_queue`` is rebuilt because its ``output_id`` was UNIQUE: an output can now be queued
    once on its own and once in a pair. Nothing references the queue, so the copy is safe.
    """
    db.executescript(
        """
        ALTER TABLE ratings ADD COLUMN pair_output_id INTEGER REFERENCES outputs(id);
        ALTER TABLE ratings ADD COLUMN preferred_output_id INTEGER REFERENCES outputs(id);
        ALTER TABLE ratings ADD COLUMN pair_score INTEGER CHECK (pair_score BETWEEN 1 AND 5);
        ALTER TABLE ratings ADD COLUMN left_output_id INTEGER REFERENCES outputs(id);
        CREATE TRIGGER ratings_pair_fields_agree BEFORE INSERT ON ratings
        WHEN (NEW.pair_output_id IS NULL AND (NEW.preferred_output_id IS NOT NULL
                                              OR NEW.pair_score IS NOT NULL
                                              OR NEW.left_output_id IS NOT NULL))
          OR (NEW.pair_output_id IS NOT NULL AND (
                NEW.pair_output_id = NEW.output_id
                OR NEW.corrected IS NOT NULL
                OR NEW.preferred_output_id NOT IN (NEW.output_id, NEW.pair_output_id)
                OR NEW.left_output_id NOT IN (NEW.output_id, NEW.pair_output_id)
                OR (NEW.verdict IN ('skip', 'unclear') AND NEW.preferred_output_id IS NOT NULL)))
        BEGIN
            SELECT RAISE(ABORT, 'pairwise rating: two outputs, preferring one or neither');
        END;
        -- "has this reviewer rated this item?" (the queue's next item, progress); covering, so
        -- skipping the items an expert already rated never reads the ratings table itself
        CREATE INDEX ratings_reviewer ON ratings(reviewer_id, output_id, pair_output_id);
        CREATE INDEX outputs_example ON outputs(example_id);  -- import finds outputs by content

        CREATE TABLE review_queue_v2 (
            id INTEGER PRIMARY KEY,
            output_id INTEGER NOT NULL REFERENCES outputs(id),
            pair_output_id INTEGER REFERENCES outputs(id),  -- pairwise item: the earlier output
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            priority INTEGER NOT NULL,         -- 0 first
            sampler TEXT NOT NULL,
            ratings_needed INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','done')),
            created_at TEXT NOT NULL,
            CHECK (pair_output_id IS NULL OR pair_output_id != output_id)
        );
        INSERT INTO review_queue_v2 (id, output_id, cycle_id, priority, sampler, ratings_needed,
                                     status, created_at)
            SELECT id, output_id, cycle_id, priority, sampler, ratings_needed, status, created_at
            FROM review_queue;
        DROP TABLE review_queue;
        ALTER TABLE review_queue_v2 RENAME TO review_queue;
        CREATE UNIQUE INDEX review_queue_item ON review_queue(output_id, IFNULL(pair_output_id, 0));
        -- next_queue_item: open items, newest cycle first, then by priority
        CREATE INDEX review_queue_next ON review_queue(status, cycle_id DESC, priority);

        ALTER TABLE reviewers ADD COLUMN email TEXT;  -- single sign-on: the identity's email
        CREATE UNIQUE INDEX reviewers_email ON reviewers(lower(email)) WHERE email IS NOT NULL;
        """
    )


@migration
def m004_evaluation_records(db: sqlite_utils.Database) -> None:
    """Per-example predictions on validation and test (for ``tuneloop compare`` and the report's
    confusion matrix and calibration), and the base model's benchmark figures, measured once per
    project and setup so every cycle can be compared with what the model knew before finetuning."""
    db.executescript(
        """
        CREATE TABLE predictions (
            id INTEGER PRIMARY KEY,
            cycle_id INTEGER NOT NULL REFERENCES cycles(id),
            split TEXT NOT NULL CHECK (split IN ('validation','test')),
            example_id TEXT NOT NULL,
            input TEXT NOT NULL,
            reference TEXT,
            output TEXT NOT NULL,
            confidence REAL,
            correct INTEGER,                   -- 1/0 against the reference; NULL without one
            extra TEXT,                        -- JSON: per-example loss, nll, tokens
            UNIQUE (cycle_id, split, example_id)
        );
        CREATE TABLE base_metrics (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            model TEXT NOT NULL,               -- the base model's location
            metric TEXT NOT NULL,              -- the model metric component, e.g. lm_eval
            setup TEXT NOT NULL,               -- JSON of its options: another setup, another figure
            name TEXT NOT NULL,
            value REAL NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (project, model, metric, setup, name)
        );
        """
    )


@migration
def m003_trials(db: sqlite_utils.Database) -> None:
    """Hyperparameter search (``tuneloop tune``): one row per trial of a study, kept whatever its
    end (complete, pruned on its intermediate validation figures, failed), so a search can be
    read back and compared. How a cycle's training went (padding share, the regularizers' reports)
    goes into ``cycles.stats`` under ``training``; it needs no column."""
    db.executescript(
        """
        CREATE TABLE trials (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            study TEXT NOT NULL,               -- one tuneloop tune run
            number INTEGER NOT NULL,           -- the trial's number within its study
            strategy TEXT NOT NULL CHECK (strategy IN ('grid','random','bayes')),
            params TEXT NOT NULL,              -- JSON: search path -> value tried
            metric TEXT NOT NULL,              -- the validation figure optimised
            direction TEXT NOT NULL CHECK (direction IN ('maximize','minimize')),
            value REAL,                        -- best validation value; NULL unless complete
            state TEXT NOT NULL CHECK (state IN ('running','complete','pruned','failed')),
            intermediate TEXT,                 -- JSON [[evaluation, step, value], ...]
            error TEXT,
            applied INTEGER NOT NULL DEFAULT 0, -- 1: its params were written into the config
            started_at TEXT NOT NULL,
            finished_at TEXT,
            seconds REAL,
            UNIQUE (study, number)
        );
        CREATE INDEX trials_project ON trials(project, study);
        """
    )


@migration
def m006_output_candidates(db: sqlite_utils.Database) -> None:
    """Several answers of one model to the same review prompt (a causal-LM trainer's
    ``num_return_sequences``), for experts to rank side by side.

    Every answer is a row of ``outputs``; ``candidate`` numbers them per prompt: 0 is the output
    (what samplers choose from, what later cycles are compared with), 1, 2, ... the further
    candidates, which are rated only in pairs. Rows from before this migration are candidate 0.
    """
    db.executescript(
        """
        ALTER TABLE outputs ADD COLUMN candidate INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX outputs_candidates ON outputs(cycle_id, example_id, candidate);
        """
    )


@migration
def m007_loop_indexes(db: sqlite_utils.Database) -> None:
    """Indexes for the queries every cycle's review step runs, so it stays linear in the pool.

    - ``outputs(input, cycle_id)``: ``pairing.previous_outputs`` joins a cycle's outputs to the
      previous cycle's by input (without it, a scan of ``outputs`` per output: 104 s for a
      9,000-item pool after a few cycles), and feedback import finds an output by its input.
    - ``feedback_usage(cycle_id)``: which ratings trained a cycle (status, reports, resume).
    - ``review_queue(cycle_id)``: a resumed cycle clears its own queue items.
    """
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS outputs_input ON outputs(input, cycle_id);
        CREATE INDEX IF NOT EXISTS feedback_usage_cycle ON feedback_usage(cycle_id);
        CREATE INDEX IF NOT EXISTS review_queue_cycle ON review_queue(cycle_id);
        """
    )


@migration
def m008_review_leases_and_sessions(db: sqlite_utils.Database) -> None:
    """Claims on queue items and server-side login sessions for the review app.

    ``review_leases``: an expert who is shown an item holds it until ``expires_at`` (renewed
    while the page is open, dropped on save, skip or logout). With ``ratings_needed`` k, the
    experts who rated an item plus those holding a live lease never exceed k, so no one is handed
    a slot that is already taken. ``queue_id`` has no foreign key on purpose: ``review_queue``
    has been rebuilt by a migration before, and a lease is worthless once its item is gone.

    ``review_sessions``: a login, kept in the database so that a reload or a new tab finds it
    again from the browser's HttpOnly cookie. Only SHA-256 hashes of the cookie's token and of
    the one-time grant that sets the cookie are stored. ``ended_at`` set: logged out
    everywhere (every tab holding this session is logged out at its next request).
    """
    db.executescript(
        """
        CREATE TABLE review_leases (
            queue_id INTEGER NOT NULL,
            reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
            claimed_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            PRIMARY KEY (queue_id, reviewer_id)
        );
        CREATE INDEX review_leases_reviewer ON review_leases(reviewer_id, expires_at);
        CREATE TABLE review_sessions (
            id INTEGER PRIMARY KEY,
            reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
            token_hash TEXT UNIQUE,            -- sha256 of the cookie's token, once set
            grant_hash TEXT UNIQUE,            -- sha256 of the one-time code that sets it
            grant_expires_at TEXT,
            single_sign_on INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,          -- idle expiry, moved on by activity
            ends_at TEXT NOT NULL,             -- absolute end, whatever the activity
            ended_at TEXT,                     -- logged out (or ended by an admin)
            ended_reason TEXT
        );
        CREATE INDEX review_sessions_reviewer ON review_sessions(reviewer_id);
        """
    )
