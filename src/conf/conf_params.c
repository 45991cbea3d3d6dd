/* conf_params: the parameter table (see conf_params.h). */
#include "conf/conf_params.h"

#include <limits.h>
#include <string.h>

/* Upper bounds chosen so that callers may store values in an int (counts,
 * seconds) or add a little to a byte size without overflowing. */
#define COUNT_MAX INT_MAX
#define SECONDS_MAX INT_MAX
#define BYTES_MAX (1LL << 40)

/* One macro per kind of row, each filling every field (so that
 * -Wmissing-field-initializers stays quiet on every compiler). */
#define STR(n, d, doc) {n, CONF_STR, d, 0, 0, 0, doc, NULL, 0}
#define ENUM(n, d, choices, doc) {n, CONF_STR, d, 0, 0, 0, doc, choices, 0}
#define LIST(n, d, doc) {n, CONF_LIST, d, 0, 0, 0, doc, NULL, 0}
#define LIST_OF(n, d, choices, doc) {n, CONF_LIST, d, 0, 0, 0, doc, choices, 0}
#define BOOL(n, d, doc) {n, CONF_BOOL, d, 0, 1, 0, doc, NULL, 0}
#define INT(n, d, lo, hi, doc) {n, CONF_INT, d, lo, hi, 0, doc, NULL, 0}
#define TIME(n, d, unit, lo, doc) {n, CONF_TIME, d, lo, SECONDS_MAX, unit, doc, NULL, 0}
#define COMPUTED(n, flag, doc) {n, CONF_STR, "", 0, 0, 0, doc, NULL, flag}
#define RAW_STR(n, d, doc) {n, CONF_STR, d, 0, 0, 0, doc, NULL, CONF_F_RAW}
#define RAW_LIST(n, d, doc) {n, CONF_LIST, d, 0, 0, 0, doc, NULL, CONF_F_RAW}

/* Postfix parameters tern does not implement, each with what tern does
 * instead. Tutorials' main.cf files set them, so they load without error and
 * `tern config check` says they have no effect; tern.conf(5) lists them in a
 * section of their own. They are not rows: no getter may ask for them. A
 * name moves to the table when its feature lands. Keep sorted by name. */
const struct conf_ignored conf_ignored[] = {
    {"line_length_limit", "tern does not split long message lines; SMTP command lines are "
                          "bounded at 1000 octets."},
    {"local_destination_concurrency_limit", "local deliveries are limited only by "
                                            "default_process_limit, for all recipients together."},
    {"queue_run_delay", "tern schedules each deferred message at its own backoff time instead "
                        "of scanning the queue."},
    {"smtpd_tls_loglevel", "the SMTP server logs one line per TLS session (Postfix's level 1) "
                           "and has no other levels."},
};

const size_t conf_ignored_count = sizeof conf_ignored / sizeof conf_ignored[0];

const struct conf_ignored *conf_ignored_find(const char *name)
{
    for (size_t i = 0; i < conf_ignored_count; i++)
        if (strcmp(conf_ignored[i].name, name) == 0)
            return &conf_ignored[i];
    return NULL;
}

/* Keep sorted by name (strcmp order); a unit test checks it. */
const struct conf_param conf_params[] = {
    STR("2bounce_notice_recipient", "postmaster",
        "Who gets a bounce that could not be delivered (a double bounce)."),
    LIST("alias_database", "hash:/etc/aliases",
        "Alias tables `newaliases` checks; tern reads alias files as text and notices changes "
        "itself, so there is nothing to rebuild."),
    LIST("alias_maps", "hash:/etc/aliases",
        "Alias tables the local delivery agent consults, in order."),
    LIST("allow_mail_to_commands", "alias, forward",
        "Where the local delivery agent accepts |command targets: alias (alias_maps), forward (.forward files), "
        "include (:include: files); a target from anywhere else bounces (5.7.1 mail to command is restricted)."),
    LIST("allow_mail_to_files", "alias, forward",
        "Where the local delivery agent accepts /file targets (alias, forward, include, as allow_mail_to_commands)."),
    TIME("anvil_rate_time_unit", "60s", 's', 1,
        "The time unit of the per-client rate limits."),
    LIST("authorized_flush_users", "static:anyone",
        "Users who may flush the queue (`tern queue flush`, `sendmail -q`): user names and tables "
        "that find the user name; static:anyone admits everybody. Root and mail_owner always may."),
    LIST("authorized_mailq_users", "static:anyone",
        "Users who may list the queue (`mailq`, `tern queue list`), as authorized_flush_users."),
    STR("authserv_id", "$myhostname",
        "The name of this server in the Authentication-Results fields smtpd adds (RFC 8601); fields "
        "arriving with this name are removed first (tern extension)."),
    TIME("bounce_queue_lifetime", "5d", 'd', 0,
        "How long a bounce message may stay in the queue before it is given up."),
    INT("bounce_size_limit", "50000", 0, BYTES_MAX,
        "Largest original message returned whole in a bounce; larger ones are returned as "
        "headers only."),
    ENUM("capture", "no", "no|yes|copy",
        "Capture mode (tern extension, docs: \"Testing your application's mail\"): yes keeps every accepted "
        "message in the capture store (queue_directory/capture/), durable before the 250, delivers nothing and "
        "accepts every recipient; copy keeps it and also delivers it normally; no is an ordinary MTA. The "
        "messages are served by the HTTP API and web page on capture_http_address."),
    STR("capture_http_address", "127.0.0.1:8025",
        "Where the capture API and web page listen (host:port; [v6]:port). Only loopback addresses are "
        "accepted (tern extension)."),
    TIME("capture_max_age", "0", 's', 0,
        "Captured messages older than this are removed, oldest first (0: kept however old); the page "
        "and /metrics count what was pruned (tern extension)."),
    INT("capture_max_messages", "10000", 1, COUNT_MAX,
        "The capture store keeps at most this many messages; the oldest go first, counted in /metrics and "
        "shown on the page (tern extension)."),
    LIST("capture_release_recipients", "",
        "Where the capture API may release a captured message to (POST /api/v1/messages/ID/release): "
        "addresses, domains (example.com or @example.com) and type:table tables in which an address or its "
        "domain is a key. Empty: releasing is off (tern extension)."),
    BOOL("capture_require_auth", "no",
        "Capture mode: no accepts any SMTP AUTH login and password (the login names an inbox; offered "
        "without TLS to clients on loopback) from every client under capture = yes, and under copy from "
        "mynetworks only (they may relay anyway); yes checks them as smtpd_sasl_type says (tern extension)."),
    INT("capture_session_failure_rate", "0", 0, 100,
        "Capture mode (yes or copy): the share of SMTP sessions, in percent, that get 421 4.3.2 at once, "
        "to test an application's retries; deterministic (at 25 the 4th, 8th ... session). PUT "
        "/api/v1/rules overrides it (tern extension)."),
    RAW_STR("command_execution_directory", "",
        "Working directory of delivery commands (aliases', .forward's and :include:'s |command, mailbox_command), "
        "with $user, $home, $shell (of the user it runs as), $recipient, $local, $domain, $extension and "
        "$recipient_delimiter expanded (${name?text}, ${name:text} as in forward_path), the values passed through "
        "command_expansion_filter; a directory that cannot be entered defers the delivery. Empty: the user's "
        "home directory, else /."),
    STR("command_expansion_filter",
        "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "The characters the local delivery agent keeps in what a delivery puts in a command's environment "
        "(RECIPIENT, SENDER, LOCAL, EXTENSION ...) and in command_execution_directory's expansions; any other "
        "becomes '_', so an address cannot carry shell syntax into a command line."),
    TIME("command_time_limit", "1000s", 's', 1,
        "Longest run of a delivery command (an alias's |command, mailbox_command); then it is killed and the "
        "delivery deferred."),
    STR("config_directory", "/etc/tern",
        "Directory holding main.cf and master.cf."),
    INT("default_destination_concurrency_limit", "20", 1, COUNT_MAX,
        "Default number of parallel deliveries to one destination (smtp_destination_concurrency_limit "
        "and lmtp_destination_concurrency_limit follow it)."),
    INT("default_destination_recipient_limit", "50", 1, COUNT_MAX,
        "Default largest number of recipients per message delivery (smtp_destination_recipient_limit "
        "and lmtp_destination_recipient_limit follow it)."),
    STR("default_privs", "nobody",
        "The user that commands and files of aliases run as when root owns the alias table (or it has no file), "
        "and mailbox_command for root's mail; must not be root or mail_owner."),
    INT("default_process_limit", "100", 1, COUNT_MAX,
        "Most local deliveries in progress at once, and, separately, most SMTP client sessions "
        "(in Postfix: the processes a master.cf service may run)."),
    STR("default_transport", "smtp",
        "How mail for other domains (not ours, not relay_domains, no transport_maps entry) leaves: smtp (MX "
        "lookup or relayhost), smtp:[host]:port, lmtp:..., error:text (bounced), retry:text (deferred) or "
        "discard:text (reported delivered, sent nowhere: `tern dev` keeps test mail from leaving this way); "
        "a transport_maps entry's next hop wins over the one written here."),
    TIME("delay_warning_time", "0h", 'h', 0,
        "After how long the sender is told a message is delayed; 0 sends no warning."),
    BOOL("disable_expn_command", "yes",
        "Refuse the SMTP EXPN command (tern extension)."),
    BOOL("disable_vrfy_command", "yes",
        "Answer VRFY with 252 instead of telling whether an address exists (tern default: yes)."),
    LIST("dkim_sign_maps", "",
        "Tables mapping a sender domain (the From: header's; .domain entries cover subdomains) to its "
        "DKIM keys, \"selector:/path/key.pem\" separated by commas or spaces (RSA and Ed25519 side by side "
        "give two signatures). `tern dkim keygen DOMAIN` makes a key and prints the line (tern extension)."),
    TIME("dkim_signature_lifetime", "0s", 's', 0,
        "How long a DKIM signature tern makes stays valid (its x= tag, RFC 6376); 0: no x=, the "
        "signature does not expire (tern extension)."),
    ENUM("dmarc_quarantine_action", "hold", "hold|deliver",
        "What reject_dmarc_policy does with mail whose DMARC policy is quarantine: hold it (tern queue "
        "shows why; release or delete it there), or deliver it, the result in Authentication-Results "
        "for the mailbox's filter (tern extension)."),
    STR("dmarc_report_address", "",
        "Where DMARC aggregate reports (RFC 9990) come from (From: and the envelope sender) and the contact "
        "they name; set, tern records every DMARC evaluation of a domain whose record asks for reports "
        "(rua=) and sends each such domain one report per dmarc_report_interval, through its own queue, to "
        "the rua addresses the domain's record names and that accept them (RFC 9990 section 4). Empty: no "
        "reports (tern extension)."),
    TIME("dmarc_report_interval", "1d", 's', 1,
        "The reporting period of DMARC aggregate reports: periods start at multiples of it since the epoch, "
        "so 1d gives UTC days (tern extension)."),
    STR("dmarc_report_org_name", "$mydomain",
        "The organization named in DMARC aggregate reports (tern extension)."),
    LIST("dns_resolvers", "",
        "Recursive DNS resolvers (ip, ip:port, [ipv6]:port) for outbound mail; empty: /etc/resolv.conf."),
    STR("double_bounce_sender", "double-bounce",
        "Local part of the sender of double bounces; like postmaster and MAILER-DAEMON, an address of a local "
        "domain that RCPT TO always accepts, whatever the local recipient check says (its mail goes to aliases "
        "as usual)."),
    BOOL("enable_original_recipient", "yes",
        "Local deliveries (mailboxes, files, commands) write X-Original-To: with the recipient as it arrived, "
        "before aliases, virtual aliases and .forward files, between Return-Path: and Delivered-To:, as "
        "Postfix's local(8) does. no: no X-Original-To:."),
    LIST("export_environment", "TZ MAIL_CONFIG LANG",
        "Environment variables of tern's own that delivery commands also get: NAME passes it when set, "
        "NAME=value (or { NAME = value }) sets it. The delivery's own (HOME, RECIPIENT, PATH ...) take precedence."),
    RAW_LIST("forward_path", "$home/.forward${recipient_delimiter}${extension}, $home/.forward",
        "Where a local user's .forward is looked for, the first usable file winning: $user, $home, $shell, "
        "$recipient, $local, $domain, $extension, $recipient_delimiter, ${name?text}, ${name:text}; an entry "
        "naming an attribute the recipient does not have (no extension) is skipped. Not expanded as a "
        "parameter."),
    INT("header_size_limit", "102400", 1, BYTES_MAX,
        "Maximal size in bytes of a message header block; a larger header is refused with 552 5.3.4."),
    STR("home_mailbox", "",
        "Mailbox path relative to the user's home, Maildir if it ends in /, else mbox; "
        "empty: mail_spool_directory."),
    INT("hopcount_limit", "50", 1, COUNT_MAX,
        "Maximal number of Received: headers before a message is bounced as looping."),
    LIST("inet_interfaces", "all",
        "Addresses the SMTP server listens on: all, loopback-only, or a list of addresses. user@[address] of one of "
        "them (with all: of the interfaces, read at start) is a local address."),
    LIST_OF("inet_protocols", "all", "all|ipv4|ipv6",
        "IP versions to use: all, ipv4, ipv6."),
    TIME("lmtp_connect_timeout", "0s", 's', 0,
        "LMTP client: time limit for completing a TCP connection; 0 (Postfix's default): no limit of tern's "
        "own (the kernel gives up after about two minutes). A unix socket connects at once."),
    TIME("lmtp_connection_cache_time_limit", "2s", 's', 1,
        "LMTP client: how long an idle connection is kept for the next message to its server."),
    INT("lmtp_connection_reuse_count_limit", "0", 0, COUNT_MAX,
        "LMTP client: most messages one connection carries; 0 leaves it to tern (100)."),
    TIME("lmtp_data_done_timeout", "600s", 's', 1,
        "LMTP client: time limit for each recipient's reply to the end of the message."),
    TIME("lmtp_data_init_timeout", "120s", 's', 1,
        "LMTP client: time limit for the reply to DATA."),
    TIME("lmtp_data_xfer_timeout", "180s", 's', 1,
        "LMTP client: time limit for sending the message content making no progress."),
    INT("lmtp_destination_concurrency_limit", "$default_destination_concurrency_limit", 1, COUNT_MAX,
        "LMTP client: parallel deliveries to one LMTP server."),
    INT("lmtp_destination_recipient_limit", "$default_destination_recipient_limit", 1, COUNT_MAX,
        "LMTP client: most recipients in one transaction."),
    STR("lmtp_lhlo_name", "$myhostname",
        "LMTP client: the name sent in LHLO."),
    TIME("lmtp_lhlo_timeout", "300s", 's', 1,
        "LMTP client: time limit for the greeting and the LHLO reply (and STARTTLS)."),
    TIME("lmtp_mail_timeout", "300s", 's', 1,
        "LMTP client: time limit for the reply to MAIL FROM."),
    TIME("lmtp_quit_timeout", "300s", 's', 1,
        "LMTP client: time limit for the reply to QUIT."),
    TIME("lmtp_rcpt_timeout", "300s", 's', 1,
        "LMTP client: time limit for the reply to RCPT TO."),
    ENUM("lmtp_tls_security_level", "", "none|may|encrypt|verify|secure",
        "LMTP client over TCP (lmtp:inet:): STARTTLS as smtp_tls_security_level says, with the SMTP client's "
        "CA files and protocols; empty (the default) or none: plaintext, as for a store on this host. Never "
        "over a unix socket."),
    STR("local_mailbox_base", "",
        "When set, any local part at mydestination is a valid user whose mail goes to "
        "$local_mailbox_base/<localpart>/ plus home_mailbox, owned by the user tern runs as "
        "(used by `tern dev`; tern extension)."),
    LIST("local_recipient_maps", "proxy:unix:passwd.byname $alias_maps",
        "Tables of the local recipients the SMTP server accepts (user@domain or user, with and without an "
        "extension, then @domain); others are refused with 550 5.1.1 User unknown in local recipient table, "
        "except postmaster, MAILER-DAEMON and double_bounce_sender, which are always accepted. Not set: "
        "system users and aliases (any name in the development layout, local_mailbox_base); set empty: "
        "no check (unknown users bounce after they are accepted)."),
    RAW_STR("luser_relay", "",
        "Where mail for unknown local users goes instead of bouncing (Postfix's catch-all): an address, "
        "with $user, $local, $extension, $domain, $recipient and $recipient_delimiter expanded (their values "
        "kept to an address's characters), e.g. catchall+$local@example.com. smtpd still refuses unknown "
        "users at RCPT unless local_recipient_maps is empty, as with Postfix. Empty: they bounce."),
    STR("mail_name", "Tern",
        "The mail system's name, used in the greeting and in bounces."),
    STR("mail_owner", "tern",
        "Unprivileged user, of tern alone, that runs smtpd and the queue and owns the queue files "
        "(the queue directory itself, pid/, private/ and public/ are root's). Required when started as "
        "root, also by `tern dev`."),
    STR("mail_spool_directory", "/var/mail",
        "Directory of mbox mailboxes named after users, used when home_mailbox is empty."),
    RAW_STR("mailbox_command", "",
        "When set, mail to a local user (not a virtual mailbox) goes to this command, run by /bin/sh as the user "
        "in the home directory, the message on its input (e.g. /usr/bin/procmail -a \"$EXTENSION\": the value is "
        "not expanded, the shell sees the environment); exit 75 defers, another non-zero status bounces."),
    LIST("mailbox_command_maps", "",
        "Tables of per-user mailbox commands, looked up by the local user's name: a command found is used as "
        "mailbox_command is (which it overrides for that user); a table that fails defers the delivery."),
    INT("mailbox_size_limit", "51200000", 0, BYTES_MAX,
        "Largest size in bytes of a local user's mbox mailbox, of one Maildir message, and of a file an "
        "alias or .forward delivers to (also the file size limit of delivery commands); a delivery that "
        "would pass it bounces with 5.2.2 (File too large), as with Postfix. 0: no limit. Keep it above "
        "message_size_limit, or messages that smtpd accepts cannot be delivered (a warning says so)."),
    STR("mailbox_transport", "",
        "Where local users' mail goes after aliases, instead of tern's own mailbox delivery: a next hop "
        "such as lmtp:unix:private/dovecot-lmtp (.forward files are then not read). Empty: tern delivers."),
    STR("maillog_file", "",
        "File to log to (also after `tern start`); empty: standard error with `tern serve`, "
        "syslog (facility mail) with `tern start`. Started as root, the file must lie in a directory "
        "no user but root can change (checked from / down, e.g. /var/log/tern/), else tern refuses to "
        "start or reload; the file is kept root's, group of mail_owner, mode 0660."),
    TIME("maximal_backoff_time", "4000s", 's', 1,
        "Longest time between delivery attempts of a deferred message."),
    TIME("maximal_queue_lifetime", "5d", 'd', 0,
        "How long a message may stay deferred before it is bounced."),
    INT("message_size_limit", "10240000", 1, BYTES_MAX,
        "Maximal message size in bytes. Unlike Postfix, 0 (no limit) is not accepted: every "
        "input is bounded."),
    TIME("minimal_backoff_time", "300s", 's', 1,
        "Shortest time between delivery attempts of a deferred message."),
    LIST("mydestination", "$myhostname, localhost.$mydomain, localhost",
        "Domains delivered locally: names (.name: its subdomains), /file/name (a file of names separated by "
        "commas or whitespace, # comments; reread when it changes, and it must be readable at start) and "
        "type:table (a domain is listed when it is a key). user@[address] of inet_interfaces or "
        "proxy_interfaces is local too."),
    COMPUTED("mydomain", CONF_F_DOMAIN,
             "Internet domain of this system; default: $myhostname minus its first label, "
             "or localdomain."),
    COMPUTED("myhostname", CONF_F_HOSTNAME,
             "Internet host name of this system; default: the name gethostname() returns."),
    LIST("mynetworks", "127.0.0.0/8 [::1]/128",
        "Client networks allowed to relay (permit_mynetworks); when it is not set and "
        "mynetworks_style is, the networks that style derives from the interfaces instead."),
    ENUM("mynetworks_style", "", "host|subnet|class",
        "How mynetworks is derived from the interfaces when it is not set: host (their addresses), "
        "subnet (their networks), class; empty: it is not (Postfix's default is host; tern's "
        "mynetworks is loopback only)."),
    STR("myorigin", "$myhostname",
        "Domain that locally posted mail appears to come from."),
    BOOL("owner_request_special", "yes",
        "When a local recipient list is an alias and alias_maps also has owner-list, the addresses the list "
        "expands to are sent as a new message whose envelope sender is owner-list@domain, so that their "
        "bounces go to the list's owner, as with Postfix (aliases(5)). Not for mail from <>; the list's "
        "commands and files keep the original sender; only the alias the recipient names counts. no: "
        "lists keep the sender."),
    LIST("propagate_unmatched_extensions", "canonical, virtual",
        "Where an address extension (user+ext) that a table matched without is carried over to the result: "
        "with \"virtual\", virtual_alias_maps' targets get it (canonical is accepted and has no effect yet)."),
    LIST("proxy_interfaces", "",
        "Addresses this host receives mail on through a proxy or network address translator (not its own "
        "interfaces'): user@[address] of one of them is local, as of inet_interfaces. Host names are not "
        "resolved."),
    STR("queue_directory", "/var/spool/tern",
        "Root of the mail queue."),
    INT("queue_journal_segment_size", "67108864", 65536, 4294967296LL - 4096,
        "With queue_sync_method = journal: the size of a new journal segment in bytes (a multiple of "
        "4096); a message larger than an eighth of it (or 8 MiB) is kept as a file. Segments already made keep "
        "their size (tern extension)."),
    INT("queue_minfree", "0", 0, BYTES_MAX,
        "Free bytes the queue file system must keep: below it, or below 1.5 times "
        "message_size_limit, MAIL FROM gets 452 4.3.1 Insufficient system storage; 0: only the "
        "message_size_limit rule."),
    ENUM("queue_sync_method", "journal", "syncfs|fsync|journal",
        "How mail is made durable before it is acknowledged: journal (a record in "
        "queue_directory/journal/, one fdatasync per batch of messages), syncfs (a queue file each, one "
        "sync of the queue's file system per batch), or fsync (a queue file each, fdatasync of each file and "
        "fsync of queue/) (tern extension)."),
    STR("recipient_delimiter", "",
        "Characters that separate a user name from an address extension (user+ext)."),
    LIST("relay_domains", "",
        "Domains (and their subdomains) tern relays mail for from anyone, e.g. as a backup MX: names, /file/name "
        "(as in mydestination), or tables in which a domain is a key. reject_unauth_destination lets their "
        "recipients through."),
    LIST("relay_recipient_maps", "",
        "Tables of the valid recipients of relay_domains (user@domain, @domain): others are refused at RCPT "
        "with 550 5.1.1 User unknown in relay recipient table. Empty: any recipient is accepted."),
    STR("relay_transport", "relay",
        "How mail for relay_domains leaves when transport_maps has no entry for it: relay or smtp (MX lookup "
        "or relayhost), smtp:[host]:port (e.g. a backup MX's primary), lmtp:..., error:text, retry:text or "
        "discard:text; a transport_maps entry's next hop wins over the one written here."),
    STR("relayhost", "",
        "Host all non-local mail is sent to ([host]:port skips MX lookup); empty sends directly."),
    TIME("smtp_connect_timeout", "30s", 's', 1,
        "SMTP client: time limit for completing a TCP connection."),
    TIME("smtp_connection_cache_time_limit", "2s", 's', 1,
        "SMTP client: how long an idle connection is kept for the next message to its destination."),
    INT("smtp_connection_reuse_count_limit", "0", 0, COUNT_MAX,
        "SMTP client: most messages one connection carries; 0 leaves it to tern (100)."),
    TIME("smtp_data_done_timeout", "600s", 's', 1,
        "SMTP client: time limit for the reply to the end of the message."),
    TIME("smtp_data_init_timeout", "120s", 's', 1,
        "SMTP client: time limit for the reply to DATA."),
    TIME("smtp_data_xfer_timeout", "180s", 's', 1,
        "SMTP client: time limit for sending the message content making no progress."),
    INT("smtp_destination_concurrency_limit", "$default_destination_concurrency_limit", 1, COUNT_MAX,
        "SMTP client: parallel deliveries to one destination."),
    INT("smtp_destination_recipient_limit", "$default_destination_recipient_limit", 1, COUNT_MAX,
        "SMTP client: most recipients in one transaction."),
    STR("smtp_helo_name", "$myhostname",
        "SMTP client: the name sent in EHLO and HELO."),
    TIME("smtp_helo_timeout", "300s", 's', 1,
        "SMTP client: time limit for the greeting and the EHLO/HELO reply."),
    TIME("smtp_mail_timeout", "300s", 's', 1,
        "SMTP client: time limit for the reply to MAIL FROM."),
    INT("smtp_mx_address_limit", "5", 0, COUNT_MAX,
        "SMTP client: the most addresses one delivery tries, of all the exchangers DNS gives; 0: no limit."),
    TIME("smtp_quit_timeout", "300s", 's', 1,
        "SMTP client: time limit for the reply to QUIT."),
    TIME("smtp_rcpt_timeout", "300s", 's', 1,
        "SMTP client: time limit for the reply to RCPT TO."),
    BOOL("smtp_sasl_auth_enable", "no",
        "SMTP client: log in (AUTH PLAIN, over TLS only) where smtp_sasl_password_maps has an entry."),
    LIST("smtp_sasl_password_maps", "",
        "SMTP client: next hop ([host]:port, or host) to user:password."),
    INT("smtp_tcp_port", "25", 1, 65535,
        "SMTP client: TCP port of mail exchangers found in DNS (relayhost and transport_maps may name another)."),
    STR("smtp_tls_CAfile", "/etc/ssl/certs/ca-certificates.crt",
        "SMTP client: trusted CA certificates (PEM) for the verify and secure levels."),
    STR("smtp_tls_CApath", "",
        "SMTP client: directory of trusted CA certificates (hashed, as c_rehash makes)."),
    STR("smtp_tls_mandatory_protocols", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
        "SMTP client: TLS versions when TLS is required (encrypt, verify, secure)."),
    LIST("smtp_tls_policy_maps", "",
        "SMTP client: per-destination TLS policy (none, may, encrypt, verify, secure; match=name:name)."),
    STR("smtp_tls_protocols", "!SSLv2, !SSLv3",
        "SMTP client: TLS versions for opportunistic TLS."),
    ENUM("smtp_tls_security_level", "may", "none|may|encrypt|verify|secure",
        "SMTP client: none, may (STARTTLS when offered), encrypt (required), verify/secure (certificate checked)."),
    STR("smtpd_banner", "$myhostname ESMTP $mail_name",
        "Text after the 220 code in the SMTP greeting."),
    INT("smtpd_client_auth_rate_limit", "0", 0, COUNT_MAX,
        "AUTH commands one client may send per anvil_rate_time_unit (450 4.7.1 past it); 0: no limit."),
    INT("smtpd_client_connection_count_limit", "50", 0, COUNT_MAX,
        "Simultaneous connections one client (an IPv4 address, an IPv6 /64) may hold; 0 disables the limit."),
    INT("smtpd_client_connection_rate_limit", "0", 0, COUNT_MAX,
        "Connections one client may make per anvil_rate_time_unit; 0: no limit."),
    LIST("smtpd_client_event_limit_exceptions", "$mynetworks",
        "Clients (CIDR) the per-client connection and rate limits, and the shared AUTH lockout of clients "
        "beyond the lockout table, do not apply to."),
    INT("smtpd_client_message_rate_limit", "0", 0, COUNT_MAX,
        "Messages (MAIL FROM) one client may send per anvil_rate_time_unit; 0: no limit."),
    INT("smtpd_client_new_tls_session_rate_limit", "0", 0, COUNT_MAX,
        "New (not resumed) TLS sessions one client may start per anvil_rate_time_unit: past it STARTTLS "
        "gets 454 4.7.0 and port 465 closes the connection before the handshake; 0: no limit."),
    INT("smtpd_client_recipient_rate_limit", "0", 0, COUNT_MAX,
        "Recipients (RCPT TO, accepted or not) one client may send per anvil_rate_time_unit "
        "(450 4.7.1 past it); 0: no limit."),
    LIST("smtpd_client_restrictions", "",
        "Restrictions on the client (evaluated at RCPT TO, as with smtpd_delay_reject = yes)."),
    LIST("smtpd_end_of_data_restrictions", "",
        "Restrictions applied once the message is in, before the final reply: those that need no "
        "recipient, and reject_dmarc_policy (DMARC fail under p=reject, or a From: with no domain or "
        "several: 550 5.7.1; under p=quarantine: accepted on hold, or delivered, see "
        "dmarc_quarantine_action)."),
    TIME("smtpd_error_sleep_time", "1s", 's', 0,
        "Pause before the next command is read, after each error past smtpd_soft_error_limit."),
    ENUM("smtpd_forbid_bare_newline", "normalize", "normalize|reject",
        "What the SMTP server does with a bare LF in a message: normalize it to CRLF, or reject."),
    INT("smtpd_hard_error_limit", "20", 1, COUNT_MAX,
        "Number of errors after which the SMTP server disconnects."),
    LIST("smtpd_helo_restrictions", "",
        "Restrictions on the HELO/EHLO name (evaluated at RCPT TO)."),
    INT("smtpd_junk_command_limit", "100", 1, COUNT_MAX,
        "Number of NOOP, RSET, VRFY, EXPN and HELP commands a session may give before each "
        "further one counts as an error towards smtpd_hard_error_limit."),
    ENUM("smtpd_mail_authentication", "auto", "auto|yes|no",
        "Check SPF (MAIL FROM and HELO), DKIM and DMARC of mail from clients that are neither in mynetworks "
        "nor authenticated, and record the results in an Authentication-Results field. auto: on every "
        "listener except submission ones (service submission, submissions or smtps, port 587 or 465, "
        "wrapper mode) (tern extension)."),
    INT("smtpd_memory_limit", "268435456", 0, BYTES_MAX,
        "Memory all SMTP sessions together may hold, as smtpd counts it: 32 KiB a session plus "
        "512 bytes and the address for each recipient (a session with 1000 recipients counts "
        "about 600 KB). A new session beyond it gets 421 4.3.2 and is closed; a recipient beyond "
        "it gets 452 4.5.3. With queue_sync_method = journal, messages being received are kept "
        "in memory up to 1 MiB each and a quarter of this limit together, counted apart (they "
        "never refuse a session or a recipient): beyond, they are written to the queue "
        "directory. 0: no limit (tern extension)."),
    INT("smtpd_recipient_limit", "1000", 1, COUNT_MAX,
        "Maximal number of recipients accepted for one message."),
    LIST("smtpd_recipient_restrictions", "",
        "Restrictions applied to RCPT TO, after smtpd_relay_restrictions."),
    BOOL("smtpd_reject_unlisted_recipient", "yes",
        "Refuse at RCPT a recipient of a domain of ours that no table lists (local, virtual alias, virtual "
        "mailbox, relay recipients), with 550 5.1.1 (the code: unknown_local_recipient_reject_code and its kin); "
        "no: accept it and bounce it later (backscatter)."),
    BOOL("smtpd_reject_unlisted_sender", "no",
        "Refuse a sender address of a domain of ours that no table lists, as reject_unlisted_sender does, "
        "after smtpd_sender_restrictions (even when they permitted): 550 5.1.0 <addr>: Sender address "
        "rejected: User unknown in local recipient table (the code from unknown_local_recipient_reject_code "
        "and its kin). The null sender is never refused."),
    LIST("smtpd_relay_restrictions",
        "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        "Restrictions that decide relaying, applied to RCPT TO before smtpd_recipient_restrictions "
        "(Postfix's default ends in defer_unauth_destination; tern's refuses relaying for good: 554 5.7.1)."),
    BOOL("smtpd_require_from_header", "yes",
        "Reject mail without a From: header from clients outside mynetworks (tern extension)."),
    BOOL("smtpd_sandbox", "yes",
        "Confine smtpd once it serves: no exec (no_new_privs and a seccomp allowlist) and, where the "
        "kernel has Landlock, files only in its rooms (incoming/ read-write; the configuration "
        "directory, /etc and the directories of the tables and password files it rereads read-only; "
        "maillog_file's directory for appending). \"no\" is for debugging (tern extension)."),
    BOOL("smtpd_sasl_auth_enable", "no",
        "Offer AUTH (PLAIN, LOGIN) to mail clients."),
    TIME("smtpd_sasl_failure_delay", "1s", 's', 0,
        "How long the reply to a failed AUTH is held back (tern extension)."),
    INT("smtpd_sasl_failure_limit", "5", 0, COUNT_MAX,
        "Failed AUTHs from one client (an IPv4 address, an IPv6 /64) before it is refused for "
        "smtpd_sasl_lockout_time; 0: never (tern extension). 1024 clients are tracked; when all of them are "
        "locked out, the others share one counter and are refused together once it reaches the limit."),
    TIME("smtpd_sasl_lockout_time", "10m", 's', 1,
        "How long an address stays refused after too many failed AUTHs, and the window they are counted in."),
    STR("smtpd_sasl_path", "",
        "dovecot: its auth socket (relative: to queue_directory; default private/auth); tern: the password file (relative: to config_directory; default passwd)."),
    ENUM("smtpd_sasl_type", "tern", "tern|dovecot",
        "Where AUTH checks passwords: tern's own file (tern passwd) or Dovecot's auth socket."),
    LIST("smtpd_sender_login_maps", "",
        "Tables from envelope sender (address or @domain) to the logins that own it, for reject_sender_login_mismatch."),
    LIST("smtpd_sender_restrictions", "",
        "Restrictions applied to MAIL FROM."),
    INT("smtpd_soft_error_limit", "10", 1, COUNT_MAX,
        "Number of errors after which each further error costs the client smtpd_error_sleep_time."),
    TIME("smtpd_timeout", "300s", 's', 1,
        "How long the SMTP server waits for a client command or data."),
    BOOL("smtpd_tls_auth_only", "yes",
        "Offer AUTH only in TLS sessions (Postfix's default is no; tern's is yes)."),
    STR("smtpd_tls_cert_file", "",
        "PEM certificate (with its chain) of the SMTP server; RSA or ECDSA."),
    LIST("smtpd_tls_chain_files", "",
        "PEM files each holding a private key and its certificate chain (several key types side by side)."),
    ENUM("smtpd_tls_ciphers", "medium", "medium|high",
        "Cipher grade for TLS 1.2 and older (TLS 1.3 suites are always the strong ones)."),
    STR("smtpd_tls_eccert_file", "",
        "PEM ECDSA certificate, used beside smtpd_tls_cert_file."),
    STR("smtpd_tls_eckey_file", "$smtpd_tls_eccert_file",
        "PEM private key for smtpd_tls_eccert_file; empty: the key is in smtpd_tls_eccert_file."),
    LIST("smtpd_tls_exclude_ciphers", "kRSA",
        "OpenSSL cipher names or aliases the SMTP server never offers. Tern's default kRSA leaves only "
        "forward-secret key exchange (Postfix's default is empty): a client that knows nothing better "
        "then sends in plaintext; set it empty to offer static RSA key exchange too."),
    STR("smtpd_tls_key_file", "$smtpd_tls_cert_file",
        "PEM private key for smtpd_tls_cert_file (read as root by the key process, never by smtpd); empty: the key is "
        "in smtpd_tls_cert_file."),
    STR("smtpd_tls_mandatory_protocols", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
        "TLS versions when TLS is required (encrypt, wrapper mode)."),
    STR("smtpd_tls_protocols", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
        "TLS versions offered with STARTTLS (\"!TLSv1.1\" excludes, \">=TLSv1.2\" bounds)."),
    BOOL("smtpd_tls_received_header", "yes",
        "Record the TLS protocol and cipher in Received: (Postfix's default is no)."),
    ENUM("smtpd_tls_security_level", "may", "none|may|encrypt",
        "none: no STARTTLS; may: offer it when a certificate is set; encrypt: require it before MAIL and AUTH."),
    TIME("smtpd_tls_session_cache_timeout", "3600s", 's', 0,
        "How long a TLS session ticket lets a client resume without a full handshake; the ticket keys "
        "are replaced at this interval. 0 turns tickets off."),
    BOOL("smtpd_tls_wrappermode", "no",
        "TLS from the first byte (port 465, RFC 8314) instead of STARTTLS."),
    BOOL("smtputf8_enable", "yes",
        "Offer and accept SMTPUTF8 (RFC 6531)."),
    LIST("tls_server_sni_maps", "",
        "Server certificates by name (SNI): host name (.domain: its subdomains) to PEM files each holding a key and its chain."),
    LIST("transport_maps", "",
        "Per-domain routes: tables mapping a domain (.domain: its subdomains) to smtp:[host]:port, smtp:host, local:, error:[5.X.Y] text (refused at RCPT with that status), "
        "or an LMTP server: lmtp:unix:path (relative: to queue_directory) or lmtp:inet:host:port (no MX lookup; port 24 by default)."),
    INT("unknown_local_recipient_reject_code", "550", 400, 599,
        "Reply code smtpd refuses an unknown address of a local domain (mydestination) with: 550 5.1.1 "
        "User unknown in local recipient table (5.1.0 for a sender: reject_unlisted_sender). 450 while "
        "testing a new table: the client retries, no mail is lost; the enhanced code's class follows."),
    INT("unknown_relay_recipient_reject_code", "550", 400, 599,
        "Reply code for an address of relay_domains that relay_recipient_maps does not list "
        "(User unknown in relay recipient table)."),
    INT("unknown_virtual_alias_reject_code", "550", 400, 599,
        "Reply code for an address of virtual_alias_domains that virtual_alias_maps does not list "
        "(User unknown in virtual alias table)."),
    INT("unknown_virtual_mailbox_reject_code", "550", 400, 599,
        "Reply code for an address of virtual_mailbox_domains that virtual_mailbox_maps does not list "
        "(User unknown in virtual mailbox table)."),
    LIST("virtual_alias_domains", "$virtual_alias_maps",
        "Domains whose every address is an alias in virtual_alias_maps (other addresses are refused at RCPT with "
        "550 5.1.1 User unknown in virtual alias table): names, /file/name (as in mydestination), or tables in "
        "which a domain is listed when it is a key (the default: the domains that are keys of "
        "virtual_alias_maps)."),
    INT("virtual_alias_expansion_limit", "1000", 1, 1000000,
        "Most addresses one recipient may expand to through virtual_alias_maps; more defers the recipient (4.6.0) "
        "until the table is fixed."),
    LIST("virtual_alias_maps", "",
        "Tables of aliases for any address, of every domain class (virtual(5)): user@domain, user (local "
        "domains only) and @domain keys; values are addresses separated by commas or blanks, @domain keeping "
        "the user, a bare name getting @$myorigin. Expanded recursively by the queue; smtpd accepts what they list."),
    INT("virtual_alias_recursion_limit", "1000", 1, 1000000,
        "How deep virtual_alias_maps may nest; deeper defers the recipient (4.6.0) until the table is fixed."),
    LIST("virtual_gid_maps", "",
        "Tables giving the group a virtual mailbox is written as (user@domain, @domain; static:5000 for all)."),
    STR("virtual_mailbox_base", "",
        "The directory virtual_mailbox_maps' paths are below (e.g. /var/mail/vhosts, owned by the virtual uid)."),
    LIST("virtual_mailbox_domains", "$virtual_mailbox_maps",
        "Domains whose addresses are mailboxes of virtual_mailbox_maps (others are refused at RCPT with 550 "
        "5.1.1 User unknown in virtual mailbox table; with virtual_mailbox_maps empty every address is "
        "accepted, for a final server such as Dovecot over LMTP to decide): names, /file/name (as in "
        "mydestination), or tables in which a domain is a key."),
    INT("virtual_mailbox_limit", "51200000", 0, BYTES_MAX,
        "Largest virtual mailbox file (mbox) or message (Maildir) in bytes; 0: no limit. A larger message "
        "bounces (5.2.2); an mbox that would grow past it defers (4.2.2)."),
    LIST("virtual_mailbox_maps", "",
        "Tables mapping an address of a virtual mailbox domain (user@domain, @domain) to its mailbox, a path "
        "below virtual_mailbox_base; a trailing / means Maildir (virtual(8))."),
    INT("virtual_minimum_uid", "100", 1, 2147483647,
        "The lowest uid virtual_uid_maps may give; a lower one defers the mail (a configuration error)."),
    STR("virtual_transport", "virtual",
        "Where mail for virtual mailbox domains goes: virtual (tern's own delivery, as virtual_uid_maps' "
        "user) or a next hop such as lmtp:unix:private/dovecot-lmtp."),
    LIST("virtual_uid_maps", "",
        "Tables giving the user a virtual mailbox is written as (user@domain, @domain; static:5000 for all)."),
};

const size_t conf_params_count = sizeof conf_params / sizeof conf_params[0];

const struct conf_param *conf_param_find_len(const char *name, size_t len)
{
    size_t lo = 0, hi = conf_params_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *cand = conf_params[mid].name;
        int cmp = strncmp(name, cand, len);
        if (cmp == 0 && cand[len] != '\0')
            cmp = -1; /* name is a proper prefix of cand: sorts before it */
        if (cmp == 0)
            return &conf_params[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct conf_param *conf_param_find(const char *name)
{
    return conf_param_find_len(name, strlen(name));
}

const struct conf_param *conf_param_default_ref(const struct conf_param *p)
{
    if (p->def[0] != '$')
        return NULL;
    return conf_param_find(p->def + 1); /* NULL unless all the rest is one name */
}

const char *conf_type_name(enum conf_type type)
{
    switch (type) {
    case CONF_STR:
        return "string";
    case CONF_INT:
        return "integer";
    case CONF_BOOL:
        return "boolean";
    case CONF_TIME:
        return "time";
    case CONF_LIST:
        return "list";
    }
    return "unknown";
}
