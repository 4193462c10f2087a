// Package notify sends nodecycle's important Events (a maintenance started,
// completed or failed, a node quarantined, an escalation) to chat and mail
// through shoutrrr: Slack, Microsoft Teams, generic webhooks, SMTP and the
// other services shoutrrr knows. The receivers' URLs carry credentials, so
// they are read from a Secret when a message is sent and never logged or
// written into an Event; an error that names a URL is shown with its
// scheme and host only.
package notify
