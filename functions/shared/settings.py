"""Names of the AWS resources, read once from the environment.

The same names are declared in infra/template.yaml (its defaults) and provisioned by the
local stack, so a handler finds its resources the same way on AWS and on the laptop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class Settings:
    cdr_bucket: str  # raw CDR drops: incoming/{tenant}/{switch}/{file name}
    lake_bucket: str  # normalized/, rated/, quarantine/, decks/, dedup/
    accounts_table: str  # tenants, switches, accounts, deck versions
    ledger_table: str  # balances, balance postings, payments
    files_table: str  # processed-file ledger and duplicate-claim sets
    ingest_queue: str
    rate_queue: str
    event_bus: str
    billing_table: str  # billing profiles, invoice drafts, numbers, payments, dunning
    documents_bucket: str  # invoices/{tenant}/{number}.{pdf,xml,csv}: the issued documents
    invoice_state_machine: str  # the invoice cycle (infra/invoice_cycle.asl.json)
    mail_from: str  # the verified SES identity invoices and reminders are sent from
    fraud_table: str  # fraud counters, baselines and alerts (items expire: `expires_at`)
    fraud_topic: str  # fraud alerts for people: the SNS topic's ARN on AWS, its name locally


@cache
def settings() -> Settings:
    env = os.environ.get
    return Settings(
        cdr_bucket=env("TOLLGATE_CDR_BUCKET", "tollgate-cdr"),
        lake_bucket=env("TOLLGATE_LAKE_BUCKET", "tollgate-lake"),
        accounts_table=env("TOLLGATE_ACCOUNTS_TABLE", "tollgate-accounts"),
        ledger_table=env("TOLLGATE_LEDGER_TABLE", "tollgate-ledger"),
        files_table=env("TOLLGATE_FILES_TABLE", "tollgate-files"),
        ingest_queue=env("TOLLGATE_INGEST_QUEUE", "tollgate-ingest"),
        rate_queue=env("TOLLGATE_RATE_QUEUE", "tollgate-rate"),
        event_bus=env("TOLLGATE_EVENT_BUS", "tollgate"),
        billing_table=env("TOLLGATE_BILLING_TABLE", "tollgate-billing"),
        documents_bucket=env("TOLLGATE_DOCUMENTS_BUCKET", "tollgate-documents"),
        invoice_state_machine=env("TOLLGATE_INVOICE_STATE_MACHINE", "tollgate-invoice-cycle"),
        mail_from=env("TOLLGATE_MAIL_FROM", "billing@tollgate.example"),
        fraud_table=env("TOLLGATE_FRAUD_TABLE", "tollgate-fraud"),
        fraud_topic=env("TOLLGATE_FRAUD_TOPIC", "tollgate-fraud-alerts"),
    )
