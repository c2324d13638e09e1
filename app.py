"""Tollgate's Lambda functions and their event sources. Declarations only.

Each function hands the raw Lambda event to its context's handler, which returns the SQS
partial-batch response (the schedule's handler: a summary of what it posted). The handler
modules are imported on first call, so packaging and the local runner can read these
declarations without the handlers' dependencies.
"""

from chalice import Chalice, Cron, Rate, Response
from chalice.app import AuthRequest, CloudWatchEvent, SQSEvent

from functions.shared.settings import settings

app = Chalice(app_name="tollgate")


@app.on_sqs_message(queue=settings().ingest_queue, batch_size=1)
def handle_cdr_drops(event: SQSEvent) -> dict:
    from functions.ingest.handler import handle_cdr_drops as handle

    return handle(event.to_dict(), event.context)


@app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
def handle_normalized_files(event: SQSEvent) -> dict:
    from functions.rate.handler import handle_normalized_files as handle

    return handle(event.to_dict(), event.context)


# 02:00 UTC on the 1st: the month just ended in every tenant's zone east of UTC-2. A tenant
# further west still has hours of it: fees count days of service, not traffic, and the tiers'
# traffic of those hours is trued up when the month is closed again, a month later.
@app.schedule(Cron(0, 2, 1, "*", "?", "*"))
def close_billing_month(event: CloudWatchEvent) -> dict:
    from functions.invoice.handler import handle_month_end as handle

    return handle(event.to_dict(), event.context)


# The invoice cycle's tasks: each a step of the state machine in infra/invoice_cycle.asl.json
# (deployed by infra/package.yaml), which passes small JSON (keys, counts) from one to the next.
@app.lambda_function(name="invoice_aggregate")
def invoice_aggregate(event: dict, context) -> dict:
    from functions.invoice.handler import aggregate

    return aggregate(event, context)


@app.lambda_function(name="invoice_draft")
def invoice_draft(event: dict, context) -> dict:
    from functions.invoice.handler import draft

    return draft(event, context)


@app.lambda_function(name="invoice_number")
def invoice_number(event: dict, context) -> dict:
    from functions.invoice.handler import number

    return number(event, context)


@app.lambda_function(name="invoice_render")
def invoice_render(event: dict, context) -> dict:
    from functions.invoice.handler import render

    return render(event, context)


@app.lambda_function(name="invoice_send")
def invoice_send(event: dict, context) -> dict:
    from functions.invoice.handler import send

    return send(event, context)


@app.lambda_function(name="invoice_post")
def invoice_post(event: dict, context) -> dict:
    from functions.invoice.handler import post

    return post(event, context)


# 03:00 UTC daily: each tenant's invoice cycles whose period has just closed (on its own day).
@app.schedule(Cron(0, 3, "*", "*", "?", "*"))
def start_invoice_cycles(event: CloudWatchEvent) -> dict:
    from functions.invoice.handler import handle_invoice_schedule as handle

    return handle(event.to_dict(), event.context)


# SES's bounce and complaint events for the invoices it sent (its configuration set's
# EventBridge destination, docs/deploy.md): recorded on each invoice.
@app.on_cw_event(
    {"source": ["aws.ses"], "detail-type": ["Email Bounced", "Email Complaint Received"]}
)
def record_mail_events(event: CloudWatchEvent) -> dict:
    from functions.invoice.handler import handle_mail_event as handle

    return handle(event.to_dict(), event.context)


# Each FileRated event on the tollgate bus: the file's calls counted into its accounts' hours
# and the rules one file can trip checked at once, minutes after the calls were rated, not at
# the next schedule: toll fraud runs up its cost by the minute. (Chalice puts the rule on the
# default bus; infra/package.yaml moves it to the tollgate bus, where rating publishes.)
@app.on_cw_event({"source": ["tollgate.rate"], "detail-type": ["FileRated"]})
def check_fraud(event: CloudWatchEvent) -> dict:
    from functions.fraud.handler import handle_file_rated as handle

    return handle(event.to_dict(), event.context)


# Every 5 minutes: the rules that need time to pass, over every tenant's recent hours.
@app.schedule(Rate(5, unit=Rate.MINUTES))
def evaluate_fraud(event: CloudWatchEvent) -> dict:
    from functions.fraud.handler import handle_fraud_schedule as handle

    return handle(event.to_dict(), event.context)


# 06:00 UTC daily: reminders, final notices, suspensions and credit limits of every tenant.
@app.schedule(Cron(0, 6, "*", "*", "?", "*"))
def run_dunning(event: CloudWatchEvent) -> dict:
    from functions.invoice.handler import handle_daily_dunning as handle

    return handle(event.to_dict(), event.context)


# 06:30 UTC daily: yesterday's revenue assurance check of every tenant's switches (files,
# sequence gaps, silent hours, late files, quarantine, unrated calls, money not billed), after
# the 6-hour late-file margin; each alert published once (functions/ingest/assurance.py).
@app.schedule(Cron(30, 6, "*", "*", "?", "*"))
def check_assurance(event: CloudWatchEvent) -> dict:
    from functions.ingest.handler import handle_assurance_schedule as handle

    return handle(event.to_dict(), event.context)


# Stripe's webhook, authenticated by its signature alone (no API key: Stripe cannot send one).
# Chalice's raw_body is the body as sent, base64-decoded when API Gateway says it is encoded.
@app.route("/v1/webhooks/stripe/{tenant}", methods=["POST"], content_types=["application/json"])
def stripe_webhook(tenant: str) -> Response:
    from functions.invoice.handler import handle_stripe_webhook as handle

    request = app.current_request
    raw = request.raw_body
    status, body = handle(
        tenant,
        raw if isinstance(raw, bytes) else raw.encode(),
        request.headers.get("stripe-signature"),
    )
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


# --- per-key limits (issue 13): API Gateway counts each request against the usage plan's key
# the token names (functions/api/usagekeys.py); no store read, serve() still authenticates.
@app.authorizer(name="usage_key", ttl_seconds=300)
def usage_key(auth_request: AuthRequest) -> dict:
    from functions.api.usagekeys import decide, policy

    return policy(decide(auth_request.token), auth_request.method_arn)


KEYED = {"authorizer": usage_key, "api_key_required": True}


# The reseller and customer API: every route authenticates its API key in
# functions.api.handler.serve, and its OpenAPI document (functions/api/openapi.py) lists it.
@app.route("/v1/me", methods=["GET"], **KEYED)
def api_me() -> Response:
    from functions.api.handler import me

    return me(app.current_request)


@app.route("/v1/accounts", methods=["GET"], **KEYED)
def api_list_accounts() -> Response:
    from functions.api.handler import list_accounts

    return list_accounts(app.current_request)


@app.route("/v1/accounts/{account_id}", methods=["GET"], **KEYED)
def api_get_account(account_id: str) -> Response:
    from functions.api.handler import get_account

    return get_account(app.current_request, account_id)


@app.route("/v1/accounts/{account_id}/balance", methods=["GET"], **KEYED)
def api_get_balance(account_id: str) -> Response:
    from functions.api.handler import get_balance

    return get_balance(app.current_request, account_id)


@app.route("/v1/openapi.json", methods=["GET"], **KEYED)
def api_openapi() -> Response:
    from functions.api.handler import openapi

    return openapi(app.current_request)


# --- API: money (reads): statements, invoices and their documents, payments -------------------
@app.route("/v1/accounts/{account_id}/statement", methods=["GET"], **KEYED)
def api_get_statement(account_id: str) -> Response:
    from functions.api.money import get_statement

    return get_statement(app.current_request, account_id)


@app.route("/v1/invoices", methods=["GET"], **KEYED)
def api_list_invoices() -> Response:
    from functions.api.money import list_invoices

    return list_invoices(app.current_request)


@app.route("/v1/invoices/{number}", methods=["GET"], **KEYED)
def api_get_invoice(number: str) -> Response:
    from functions.api.money import get_invoice

    return get_invoice(app.current_request, number)


@app.route("/v1/invoices/{number}/pdf", methods=["GET"], **KEYED)
def api_get_invoice_pdf(number: str) -> Response:
    from functions.api.money import get_invoice_document

    return get_invoice_document(app.current_request, number, "pdf")


@app.route("/v1/invoices/{number}/xml", methods=["GET"], **KEYED)
def api_get_invoice_xml(number: str) -> Response:
    from functions.api.money import get_invoice_document

    return get_invoice_document(app.current_request, number, "xml")


@app.route("/v1/payments", methods=["GET"], **KEYED)
def api_list_payments() -> Response:
    from functions.api.money import list_payments

    return list_payments(app.current_request)


# --- traffic (issue 13): usage per group and the caller's CDRs, read from the lake ---------
@app.route("/v1/usage", methods=["GET"], **KEYED)
def api_usage() -> Response:
    from functions.api.traffic import get_usage

    return get_usage(app.current_request)


@app.route("/v1/cdrs", methods=["GET"], **KEYED)
def api_cdrs() -> Response:
    from functions.api.traffic import get_cdrs

    return get_cdrs(app.current_request)


# --- guards: the errors Chalice answers itself (405, 415, an uncaught exception's 500) in the
# API's {"code", "message"} shape: functions.api.guards.
@app.middleware("http")
def api_errors(event, get_response) -> Response:
    from functions.api.guards import api_errors as rewrite

    return rewrite(event, get_response)


# --- guards: portal sign-in (user, password, TOTP code) -> a short-lived session token. The one
# route besides Stripe's webhook without a key: functions.api.sessions.
@app.route("/v1/sessions", methods=["POST"], content_types=["application/json"])
def api_create_session() -> Response:
    from functions.api.sessions import create_session

    return create_session(app.current_request)


# The API's writes and rates (functions/api/writes.py): accounts created and changed, an
# account's deck set, the rates in force read; each listed in functions/api/openapi.py.
@app.route("/v1/accounts", methods=["POST"], content_types=["application/json"], **KEYED)
def api_create_account() -> Response:
    from functions.api.writes import create_account

    return create_account(app.current_request)


@app.route(
    "/v1/accounts/{account_id}", methods=["PATCH"], content_types=["application/json"], **KEYED
)
def api_update_account(account_id: str) -> Response:
    from functions.api.writes import update_account

    return update_account(app.current_request, account_id)


@app.route("/v1/accounts/{account_id}/deck", methods=["PUT"], content_types=["text/csv"], **KEYED)
def api_put_deck(account_id: str) -> Response:
    from functions.api.writes import put_deck

    return put_deck(app.current_request, account_id)


@app.route("/v1/rates", methods=["GET"], **KEYED)
def api_list_rates() -> Response:
    from functions.api.writes import list_rates

    return list_rates(app.current_request)


# --- the portal's white label (functions/api/branding.py) ------------------------------------
@app.route("/v1/branding", methods=["GET"], **KEYED)
def api_get_branding() -> Response:
    from functions.api.branding import get_branding

    return get_branding(app.current_request)


@app.route("/v1/branding", methods=["PUT"], content_types=["application/json"], **KEYED)
def api_put_branding() -> Response:
    from functions.api.branding import put_branding

    return put_branding(app.current_request)


# --- real-time authorization (issue 14; functions/api/authz.py): a switch's START, INTERIM and
# STOP of one call, answered and the call's money held.
@app.route("/v1/authz", methods=["POST"], content_types=["application/json"], **KEYED)
def api_authorize() -> Response:
    from functions.api.authz import authorize

    return authorize(app.current_request)


# FreeSWITCH's mod_xml_curl asks the same START as a form post with HTTP Basic (it sends no JSON
# nor bearer header): answered as its dialplan document, always (functions/api/authz.py).
@app.route(
    "/v1/authz/freeswitch",
    methods=["POST"],
    content_types=["application/x-www-form-urlencoded"],
    **KEYED,
)
def api_authorize_freeswitch() -> Response:
    from functions.api.authz import authorize_freeswitch

    return authorize_freeswitch(app.current_request)
