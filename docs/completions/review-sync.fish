# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_review_sync_global_optspecs
    string join \n config= log-format= v/verbose q/quiet h/help V/version
end

function __fish_review_sync_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_review_sync_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_review_sync_using_subcommand
    set -l cmd (__fish_review_sync_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c review-sync -n "__fish_review_sync_needs_command" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_needs_command" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_needs_command" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_needs_command" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_needs_command" -s V -l version -d 'Print version'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "run" -d 'Run the daemon: poll every source on its schedule (cron, in UTC) and deliver continuously'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "sync" -d 'One pass now: poll, deliver everything due, print a summary, exit'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "check" -d 'Validate the config, print the quota plan, and exit'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "ledger" -d 'Query and repair the ledger'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "demo" -d 'Run two passes against the built-in sandbox and show what was delivered'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "sandbox" -d 'Serve the emulators of Travtus and every platform on loopback'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "completions" -d 'Print the shell completion script for bash, zsh or fish'
complete -c review-sync -n "__fish_review_sync_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c review-sync -n "__fish_review_sync_using_subcommand run" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand run" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand run" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand run" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -l source -d 'Poll only this source (repeatable; default: all)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -l wait -d 'The most this sync may take, polling included; it delivers while it reads, then keeps retrying failed deliveries until this runs out. It then stops cleanly: what was read is recorded, what was not delivered stays pending for the next pass, and it exits non-zero saying what was left. At most 1 week' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -l dry-run -d 'Print the exact JSON bodies that would be POSTed (one per line) and change nothing'
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -l reconcile -d 'Make this a full reconciliation pass: read every review of every location, and mark those that vanished from the platform as removed'
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -l credentials-directory -d 'Read `{ credential = "NAME" }` secrets from DIR/NAME, the files the unit\'s LoadCredential= would provide (default: $CREDENTIALS_DIRECTORY)' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -l format -d 'Print the whole check (summary, warnings, locations, online results and the quota plan) as text, or as one JSON object' -r -f -a "text\t'Lines for a person'
json\t'One JSON object: the summary, warnings, locations, online results and the quota plan'"
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -l online -d 'Also fetch each token and list each location once'
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -l set-notifications -d 'With --online: point the Business Profile notifications of each account a push source reads (its locations\' accounts and discover_accounts) at its Pub/Sub subscription\'s topic (NEW_REVIEW and UPDATED_REVIEW, keeping the types the account already has)'
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "stats" -d 'Counts by status, platform, source and group; oldest pending'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "list" -d 'One row per review'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "show" -d 'One review: its row, its body (sent, or to send), every delivery attempt with the group and version it carried, and every requeue'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "export" -d 'The whole ledger for audit, streamed (constant memory at any size). Rows that cannot be read are named on stderr and skipped (exit 65)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "quarantine" -d 'The platform records that could not become reviews, with the reason (and the raw record in JSON and CSV)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "polls" -d 'The poll log: one row per location poll (kept `retain_polls_days`)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "purge" -d 'Remove review text and reviewer names (comment, title, display_name) of reviews delivered before DATE; ids, hashes and history stay'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "backup" -d 'Write a consistent copy of the ledger (safe while the daemon runs)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "resend" -d 'Send a delivered review again on purpose: back to pending, to the group the config maps it to now; recorded in the `requeues` table'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "retry" -d 'Put held/rejected reviews back to pending (after fixing a mapping or credential); each is recorded in the `requeues` table. One named review that is missing, delivered or pending is explained (exit 1 unless it is already pending)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and not __fish_seen_subcommand_from stats list show export quarantine polls purge backup resend retry help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from stats" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'A JSON array'
csv\t'CSV with a header row'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from stats" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from stats" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from stats" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from stats" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l status -d 'Only these statuses: comma-separated or repeated (`--status held,pending`); `undelivered` is pending, held and rejected' -r -f -a "pending\t'Waiting for delivery'
delivered\t'Delivered'
held\t'Held (mapping problem)'
rejected\t'Rejected by the API'
undelivered\t'Pending, held and rejected: everything not delivered'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l source -d 'Only this source' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l group -d 'Only this group (external ref or id)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l since -d 'Only reviews first seen at or after this (2026-01-31: midnight UTC, or an RFC 3339 time)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l until -d 'Only reviews first seen before this' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l delivered-since -d 'Only reviews (last) delivered at or after this' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l delivered-until -d 'Only reviews (last) delivered before this' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'A JSON array'
csv\t'CSV with a header row'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -l bom -d 'CSV only: start with a UTF-8 byte-order mark (for spreadsheets)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from show" -l format -d 'Output format' -r -f -a "table\t'Aligned fields, the body, and a table of attempts'
json\t'One JSON object, the body and attempts included'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from show" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from show" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l format -d 'Output format' -r -f -a "jsonl\t'One JSON object per line'
csv\t'CSV with a header row'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l table -d 'Which table: reviews (one row per review) or attempts (one row per delivery attempt, in the order recorded; filters: --group is the group the attempt was sent to, --since/--until its time)' -r -f -a "reviews\t'One row per review'
attempts\t'One row per delivery attempt'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l status -d 'Only these statuses: comma-separated or repeated (`--status held,pending`); `undelivered` is pending, held and rejected' -r -f -a "pending\t'Waiting for delivery'
delivered\t'Delivered'
held\t'Held (mapping problem)'
rejected\t'Rejected by the API'
undelivered\t'Pending, held and rejected: everything not delivered'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l source -d 'Only this source' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l group -d 'Only this group (external ref or id)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l since -d 'Only reviews first seen at or after this (2026-01-31: midnight UTC, or an RFC 3339 time)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l until -d 'Only reviews first seen before this' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l delivered-since -d 'Only reviews (last) delivered at or after this' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l delivered-until -d 'Only reviews (last) delivered before this' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -l bom -d 'CSV only: start with a UTF-8 byte-order mark (for spreadsheets)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l source -d 'Only this source' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l location -d 'Only this location' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l since -d 'Only rows at or after this time (quarantine: first seen; polls: started)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l until -d 'Only rows before this time' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'A JSON array'
csv\t'CSV with a header row'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -l bom -d 'CSV only: start with a UTF-8 byte-order mark'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from quarantine" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l source -d 'Only this source' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l location -d 'Only this location' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l since -d 'Only rows at or after this time (quarantine: first seen; polls: started)' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l until -d 'Only rows before this time' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
json\t'A JSON array'
csv\t'CSV with a header row'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l errors -d 'Only polls that failed'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -l bom -d 'CSV only: start with a UTF-8 byte-order mark'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from polls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from purge" -l before -d 'Cutoff: 2026-01-31 (midnight UTC) or an RFC 3339 time' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from purge" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from purge" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from purge" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from purge" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from backup" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from backup" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from backup" -l force -d 'Replace PATH if it exists'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from backup" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from backup" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from resend" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from resend" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from resend" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from resend" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from resend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -l status -d 'Only this status (default: held and rejected)' -r -f -a "held\t'Held rows'
rejected\t'Rejected rows'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -l source -d 'Only this source' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -l group -d 'Only this group' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Counts by status, platform, source and group; oldest pending'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "list" -d 'One row per review'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "show" -d 'One review: its row, its body (sent, or to send), every delivery attempt with the group and version it carried, and every requeue'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "export" -d 'The whole ledger for audit, streamed (constant memory at any size). Rows that cannot be read are named on stderr and skipped (exit 65)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "quarantine" -d 'The platform records that could not become reviews, with the reason (and the raw record in JSON and CSV)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "polls" -d 'The poll log: one row per location poll (kept `retain_polls_days`)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Remove review text and reviewer names (comment, title, display_name) of reviews delivered before DATE; ids, hashes and history stay'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "backup" -d 'Write a consistent copy of the ledger (safe while the daemon runs)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "resend" -d 'Send a delivered review again on purpose: back to pending, to the group the config maps it to now; recorded in the `requeues` table'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Put held/rejected reviews back to pending (after fixing a mapping or credential); each is recorded in the `requeues` table. One named review that is missing, delivered or pending is explained (exit 1 unless it is already pending)'
complete -c review-sync -n "__fish_review_sync_using_subcommand ledger; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c review-sync -n "__fish_review_sync_using_subcommand demo" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand demo" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand demo" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand demo" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand sandbox" -l listen -d 'Address to listen on' -r
complete -c review-sync -n "__fish_review_sync_using_subcommand sandbox" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand sandbox" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand sandbox" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand sandbox" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand sandbox" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand completions" -l config -d 'The config file' -r -F
complete -c review-sync -n "__fish_review_sync_using_subcommand completions" -l log-format -d 'Log format on stderr (under systemd, text goes to the journal)' -r -f -a "text\t'Human-readable text'
json\t'JSON lines'"
complete -c review-sync -n "__fish_review_sync_using_subcommand completions" -s v -l verbose -d 'More logging (-v debug, -vv trace)'
complete -c review-sync -n "__fish_review_sync_using_subcommand completions" -s q -l quiet -d 'Less logging (-q warnings only, -qq errors only)'
complete -c review-sync -n "__fish_review_sync_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "run" -d 'Run the daemon: poll every source on its schedule (cron, in UTC) and deliver continuously'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "sync" -d 'One pass now: poll, deliver everything due, print a summary, exit'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "check" -d 'Validate the config, print the quota plan, and exit'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "ledger" -d 'Query and repair the ledger'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "demo" -d 'Run two passes against the built-in sandbox and show what was delivered'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "sandbox" -d 'Serve the emulators of Travtus and every platform on loopback'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "completions" -d 'Print the shell completion script for bash, zsh or fish'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and not __fish_seen_subcommand_from run sync check ledger demo sandbox completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "stats" -d 'Counts by status, platform, source and group; oldest pending'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "list" -d 'One row per review'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "show" -d 'One review: its row, its body (sent, or to send), every delivery attempt with the group and version it carried, and every requeue'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "export" -d 'The whole ledger for audit, streamed (constant memory at any size). Rows that cannot be read are named on stderr and skipped (exit 65)'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "quarantine" -d 'The platform records that could not become reviews, with the reason (and the raw record in JSON and CSV)'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "polls" -d 'The poll log: one row per location poll (kept `retain_polls_days`)'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "purge" -d 'Remove review text and reviewer names (comment, title, display_name) of reviews delivered before DATE; ids, hashes and history stay'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "backup" -d 'Write a consistent copy of the ledger (safe while the daemon runs)'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "resend" -d 'Send a delivered review again on purpose: back to pending, to the group the config maps it to now; recorded in the `requeues` table'
complete -c review-sync -n "__fish_review_sync_using_subcommand help; and __fish_seen_subcommand_from ledger" -f -a "retry" -d 'Put held/rejected reviews back to pending (after fixing a mapping or credential); each is recorded in the `requeues` table. One named review that is missing, delivered or pending is explained (exit 1 unless it is already pending)'
