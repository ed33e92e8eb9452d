//! The `hotline` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hotline::config::Config;
use hotline::runtime::Hotline;
use hotline::runtime::tickets::now_ms;
use hotline::tickets::query::{Query, TABLE_HEADER, table_line};
use hotline::tickets::{
    Actor, Department, EventKind, NewEvent, Severity, Status, Store, TicketId, Tickets,
};

/// mimalloc, not the system's malloc: a call is many small allocations on
/// several threads (messages parsed and built, events, tasks), and glibc's
/// malloc and free were a tenth of the switch thread's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "Telephony IVR and ACD engine for a property-service hotline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts the hotline (embedded defaults when no config is given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Checks a config file and the prompts it names, then exits.
    CheckConfig { path: PathBuf },
    /// The owner database: import owners and gifts from CSV, look one up.
    Owners {
        /// Config file naming the database ([owners] db).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The database file, instead of the config's.
        #[arg(long, global = true)]
        db: Option<PathBuf>,
        #[command(subcommand)]
        command: OwnerCommand,
    },
    /// Agents: make the credential hashes for the agents file.
    Agents {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// API users: make a token and the line for the users file.
    Users {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Work orders: open, follow and query tickets in the event store.
    Tickets {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: TicketCommand,
    },
    /// A day's or a week's figures from the log: JSON on stdout, or a
    /// printable HTML page, or CSV files.
    Report {
        #[command(flatten)]
        store: StoreArgs,
        /// The local day, "2026-12-01" (today by default).
        #[arg(long, conflicts_with = "week")]
        day: Option<String>,
        /// The seven days from this one.
        #[arg(long)]
        week: Option<String>,
        /// Writes the HTML page here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Writes queues.csv, hours.csv, agents.csv, tickets_by_category.csv
        /// and tickets_by_building.csv into this folder.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Call history: every call's story from the log, in local time.
    Calls {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: CallCommand,
    },
    /// Two or more nodes on one PostgreSQL store: who is active.
    Cluster {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// The active node, the lease's term and each node's last heartbeat.
    Status,
}

#[derive(Subcommand)]
enum CallCommand {
    /// The calls that started in a window (today by default), one line each.
    List {
        /// A local day, "2026-12-01".
        #[arg(long, conflicts_with_all = ["from", "to"])]
        day: Option<String>,
        /// Local times, "2026-12-01T21:00".
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Digits in the caller's number.
        #[arg(long)]
        number: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        /// answered, abandoned, voice_message, overflowed, self_service,
        /// return_visit or in_progress.
        #[arg(long)]
        outcome: Option<String>,
        /// One JSON object per call, with its timeline.
        #[arg(long)]
        json: bool,
    },
    /// One call's whole story (its SIP Call-ID, as `calls list` shows).
    Show {
        call: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OwnerCommand {
    /// Imports owners (id,name,site,building,unit,phones,language,class,points,fee_balance
    /// and optionally ,pin: 4-8 digits, stored hashed): every row is checked;
    /// one bad row and nothing is imported.
    Import { file: PathBuf },
    /// Imports the gift catalogue (id,name,points), all or nothing.
    ImportGifts { file: PathBuf },
    /// Shows the owner with this id or phone number (any form).
    Show { who: String },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Reads the password from stdin; prints the ha1_md5 and ha1_sha256
    /// lines for the agent's entry (the password itself is kept nowhere).
    Hash {
        id: String,
        #[arg(long, default_value = "hotline")]
        realm: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Makes a new random token for NAME and prints it (give it to the
    /// user) with the users-file entry holding only its hash.
    Token {
        name: String,
        /// agent or supervisor.
        #[arg(long, default_value = "agent")]
        role: String,
        /// The agent's extension (agents only; the name by default).
        #[arg(long)]
        agent: Option<String>,
    },
}

#[derive(clap::Args)]
struct StoreArgs {
    /// Config file naming the store ([tickets] store).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// The store (SQLite file or postgres:// URL), instead of the config's.
    #[arg(long, global = true)]
    store: Option<String>,
}

#[derive(Subcommand)]
enum TicketCommand {
    /// Lists tickets, filtered.
    List {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        status: Option<Status>,
        #[arg(long)]
        building: Option<String>,
        #[arg(long)]
        department: Option<Department>,
        /// Only tickets past their promised time and not resolved.
        #[arg(long)]
        overdue: bool,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows one ticket and every event of it (local times).
    Show {
        id: u64,
        /// The ticket and its events as JSON lines instead.
        #[arg(long)]
        json: bool,
    },
    /// Opens a ticket and promises the SLA time of its severity.
    Open {
        #[arg(long)]
        category: String,
        #[arg(long, default_value = "ordinary")]
        severity: Severity,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        building: Option<String>,
        #[arg(long)]
        summary: String,
        /// The owner's number for the return-visit call once resolved.
        #[arg(long)]
        phone: Option<String>,
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// Sends a ticket to a department (and a person).
    Dispatch {
        id: u64,
        #[arg(long)]
        department: Department,
        #[arg(long)]
        person: Option<String>,
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// The department reports the work done.
    Resolve {
        id: u64,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// The owner confirms: the ticket closes.
    Confirm {
        id: u64,
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// The owner says it is not fixed.
    Reopen {
        id: u64,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// Appends call events from several threads as fast as the store takes
    /// them, printing each acknowledged id (for crash tests and load).
    #[command(hide = true)]
    Stress {
        #[arg(long, default_value_t = 8)]
        writers: usize,
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Prefix of the call tags written, to tell runs apart.
        #[arg(long, default_value = "stress")]
        tag: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = hotline::logging::start();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(hotline::logging::Gathered);
    // Colours for a person at a terminal; otherwise the plain line, cheaper.
    match std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        true => log.init(),
        false => log
            .with_ansi(false)
            .fmt_fields(hotline::logging::PlainFields)
            .event_format(hotline::logging::Plain)
            .init(),
    }
    match cli.command {
        Command::CheckConfig { path } => {
            match Config::load(&path).and_then(|c| {
                let prompts = c.load_prompts(&path)?;
                let agents = c.load_agents(&path)?;
                c.load_users(&path, agents.as_deref())?;
                c.load_rota(&path)?;
                c.load_menu(&path, &prompts).map(|_| c)
            }) {
                Ok(_) => {
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config } => run(config),
        Command::Owners {
            config,
            db,
            command,
        } => match owners(config, db, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Agents {
            command: AgentCommand::Hash { id, realm },
        } => {
            use hotline::sip::digest::{Algorithm, ha1};
            let mut password = String::new();
            if std::io::stdin().read_line(&mut password).is_err() || password.trim().is_empty() {
                eprintln!("error: give the password on stdin");
                return ExitCode::from(2);
            }
            let password = password.trim_end_matches(['\r', '\n']);
            println!(
                "ha1_md5 = \"{}\"",
                ha1(Algorithm::Md5, &id, &realm, password)
            );
            println!(
                "ha1_sha256 = \"{}\"",
                ha1(Algorithm::Sha256, &id, &realm, password)
            );
            ExitCode::SUCCESS
        }
        Command::Users {
            command: UserCommand::Token { name, role, agent },
        } => {
            use hotline::http::users::{new_token, token_hash};
            let agent_line = match (role.as_str(), agent) {
                ("agent", a) => format!("agent = \"{}\"\n", a.unwrap_or_else(|| name.clone())),
                ("supervisor", None) => String::new(),
                ("supervisor", Some(_)) => {
                    eprintln!("error: a supervisor is not an agent: no --agent");
                    return ExitCode::from(2);
                }
                (other, _) => {
                    eprintln!("error: --role {other:?}: agent or supervisor");
                    return ExitCode::from(2);
                }
            };
            let token = new_token();
            eprintln!("token for {name} (shown once, keep it secret): {token}");
            println!(
                "[[user]]\nname = \"{name}\"\nrole = \"{role}\"\n{agent_line}token_sha256 = \"{}\"",
                token_hash(&token)
            );
            ExitCode::SUCCESS
        }
        Command::Report {
            store,
            day,
            week,
            html,
            csv,
        } => match report(store, day, week, html, csv) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Calls { store, command } => match calls(store, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Cluster {
            store,
            command: ClusterCommand::Status,
        } => match cluster_status(store) {
            Ok(status) => {
                print!("{status}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Tickets { store, command } => match tickets(store, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn owners(
    config: Option<PathBuf>,
    db: Option<PathBuf>,
    command: OwnerCommand,
) -> Result<(), String> {
    use hotline::owners::{OwnerDb, import};
    let config = match &config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let path = db.unwrap_or_else(|| config.owners.db.clone());
    let db = OwnerDb::open(&path).map_err(|e| e.to_string())?;
    match command {
        OwnerCommand::Import { file } => {
            let n = import::import_owners(&db, &file, &config.owners.number_plan())
                .map_err(|e| e.to_string())?;
            println!("imported {n} owners into {}", path.display());
        }
        OwnerCommand::ImportGifts { file } => {
            let n = import::import_gifts(&db, &file).map_err(|e| e.to_string())?;
            println!("imported {n} gifts into {}", path.display());
        }
        OwnerCommand::Show { who } => {
            let by_phone = hotline::owners::phone::normalize(&who, &config.owners.number_plan())
                .map(|e164| db.by_phone(&e164))
                .transpose()
                .map_err(|e| e.to_string())?
                .flatten();
            let owner = match by_phone {
                Some(o) => Some(o),
                None => db.by_id(&who).map_err(|e| e.to_string())?,
            };
            match owner {
                Some(o) => println!(
                    "{}",
                    serde_json::to_string_pretty(&o).map_err(|e| e.to_string())?
                ),
                None => return Err(format!("no owner with id or number {who}")),
            }
        }
    }
    Ok(())
}

fn report(
    args: StoreArgs,
    day: Option<String>,
    week: Option<String>,
    html: Option<PathBuf>,
    csv: Option<PathBuf>,
) -> Result<(), String> {
    let config = load_or_default(args.config.as_deref())?;
    let settings = config.report_settings();
    let local = settings.local;
    let (date, days) = match (day, week) {
        (_, Some(w)) => (w, 7),
        (Some(d), None) => (d, 1),
        (None, None) => (local.date(now_ms()), 1),
    };
    let (title, from, to) = hotline::report::period(local, &date, days)?;
    let (store, rt) = open_log(args.store, &config)?;
    let events = rt
        .block_on(store.events_between(from, to))
        .map_err(|e| e.to_string())?;
    let report = hotline::report::build(
        title,
        &events,
        from,
        to,
        &settings,
        std::time::Instant::now(),
    );
    if let Some(path) = &html {
        std::fs::write(path, hotline::report::html::render(&report, local))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &csv {
        let files = hotline::report::write_csv(&report, dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        eprintln!("wrote {} in {}", files.join(", "), dir.display());
    }
    if html.is_none() && csv.is_none() {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

fn cluster_status(args: StoreArgs) -> Result<hotline::cluster::pg::Status, String> {
    let config = load_or_default(args.config.as_deref())?;
    let url = args.store.unwrap_or(config.tickets.store);
    if !matches!(
        hotline::tickets::store::Location::parse(&url),
        Ok(hotline::tickets::store::Location::Postgres(_))
    ) {
        return Err(format!(
            "{}: a cluster's store is a postgres:// URL (--store or [tickets] store)",
            hotline::tickets::store::hide_password(&url)
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(hotline::cluster::pg::status(&url))
        .map_err(|e| e.to_string())
}

fn calls(args: StoreArgs, command: CallCommand) -> Result<(), String> {
    use hotline::tickets::history::{self, Filter, Outcome};
    let config = load_or_default(args.config.as_deref())?;
    let local = config.site.local_time();
    let (store, rt) = open_log(args.store, &config)?;
    let print_call = |c: &history::CallRecord, json: bool| -> Result<(), String> {
        if json {
            println!("{}", serde_json::to_string(c).map_err(|e| e.to_string())?);
            return Ok(());
        }
        println!(
            "{}  {}  {}  owner {}  queue {}  agent {}  {}",
            c.started,
            if c.number.is_empty() {
                "unknown caller"
            } else {
                &c.number
            },
            c.outcome.as_str(),
            c.owner.as_deref().unwrap_or("-"),
            c.queue.as_deref().unwrap_or("-"),
            c.agent.as_deref().unwrap_or("-"),
            c.call
        );
        Ok(())
    };
    match command {
        CallCommand::List {
            day,
            from,
            to,
            number,
            owner,
            agent,
            queue,
            outcome,
            json,
        } => {
            let today = local.date(now_ms());
            let (from, to) = match (day, from, to) {
                (Some(d), _, _) => local.day(&d)?,
                (None, None, None) => local.day(&today)?,
                (None, from, to) => {
                    let from = match from {
                        Some(f) => local.parse_moment(&f)?,
                        None => local.day(&today)?.0,
                    };
                    let to = match to {
                        Some(t) => local.parse_moment(&t)?,
                        None => from + 86_400_000,
                    };
                    (from, to)
                }
            };
            if to <= from {
                return Err("--from must be before --to".into());
            }
            let filter = Filter {
                number,
                owner,
                agent,
                queue,
                outcome: outcome.as_deref().map(Outcome::parse).transpose()?,
            };
            let events = rt
                .block_on(store.calls_between(from, to))
                .map_err(|e| e.to_string())?;
            for c in history::calls(&events, local)
                .iter()
                .filter(|c| filter.keeps(c))
            {
                print_call(c, json)?;
            }
        }
        CallCommand::Show { call, json } => {
            let events = rt
                .block_on(store.call_events(&call))
                .map_err(|e| e.to_string())?;
            let calls = history::calls(&events, local);
            let c = calls
                .first()
                .ok_or_else(|| format!("no call {call:?} in the log"))?;
            print_call(c, json)?;
            if !json {
                for e in &c.timeline {
                    println!("  {}  {}", e.time, e.text);
                }
                if !c.tickets.is_empty() {
                    let t: Vec<String> = c.tickets.iter().map(|t| format!("T{t}")).collect();
                    println!("  tickets: {}", t.join(" "));
                }
            }
        }
    }
    Ok(())
}

/// The config named, or the embedded defaults.
fn load_or_default(path: Option<&std::path::Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

/// The event log (`store`, else the config's) and a runtime for its reads,
/// which are async (PostgreSQL); appends block this plain thread.
fn open_log(
    store: Option<String>,
    config: &Config,
) -> Result<(Store, tokio::runtime::Runtime), String> {
    let location = store.unwrap_or_else(|| config.tickets.store.clone());
    let store = Store::open(&location)
        .map_err(|e| format!("{}: {e}", hotline::tickets::store::hide_password(&location)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok((store, rt))
}

fn tickets(args: StoreArgs, command: TicketCommand) -> Result<(), String> {
    let config = load_or_default(args.config.as_deref())?;
    let (store, rt) = open_log(args.store, &config)?;
    let now = now_ms();
    let known = |id: u64| -> Result<TicketId, String> {
        let events = rt
            .block_on(store.ticket_events(TicketId(id)))
            .map_err(|e| e.to_string())?;
        match events.first() {
            Some(e) if matches!(e.kind, EventKind::TicketOpened { .. }) => Ok(TicketId(id)),
            _ => Err(format!("no ticket T{id}")),
        }
    };
    let append = |ticket: TicketId, actor: String, kind: EventKind| -> Result<(), String> {
        let stored = store
            .append_blocking(vec![NewEvent {
                ticket: Some(ticket),
                call: None,
                at_ms: now,
                actor: Actor::Supervisor(actor),
                kind,
            }])
            .map_err(|e| e.to_string())?;
        println!(
            "{ticket}: event {} {}",
            stored[0].id.0,
            stored[0].kind.name()
        );
        Ok(())
    };
    match command {
        TicketCommand::List {
            owner,
            status,
            building,
            department,
            overdue,
            json,
        } => {
            let query = Query {
                owner,
                status,
                building,
                department,
                overdue_at_ms: overdue.then_some(now),
            };
            let all = Tickets::replay(&rt.block_on(store.all_events()).map_err(|e| e.to_string())?);
            if !json {
                println!("{TABLE_HEADER}");
            }
            for t in all.iter().filter(|t| query.matches(t)) {
                if json {
                    println!("{}", serde_json::to_string(t).map_err(|e| e.to_string())?);
                } else {
                    println!("{}", table_line(t, now));
                }
            }
        }
        TicketCommand::Show { id, json } => {
            let id = known(id)?;
            let events = rt
                .block_on(store.ticket_events(id))
                .map_err(|e| e.to_string())?;
            let tickets = Tickets::replay(&events);
            let ticket = tickets.get(id).ok_or_else(|| format!("no ticket {id}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(ticket).map_err(|e| e.to_string())?
                );
                for e in &events {
                    let line = serde_json::json!({
                        "id": e.id.0,
                        "at_ms": e.at_ms,
                        "actor": e.actor,
                        "event": e.kind,
                    });
                    println!("{line}");
                }
            } else {
                print!(
                    "{}",
                    hotline::tickets::query::ticket_text(ticket, &events, config.site.local_time())
                );
            }
        }
        TicketCommand::Open {
            category,
            severity,
            owner,
            building,
            summary,
            phone,
            actor,
        } => {
            let deadline_ms = now + config.tickets.sla_policy().commitment_ms(severity);
            let opened = store
                .append_blocking(vec![NewEvent {
                    ticket: None,
                    call: None,
                    at_ms: now,
                    actor: Actor::Supervisor(actor.clone()),
                    kind: EventKind::TicketOpened {
                        category,
                        severity,
                        owner,
                        building,
                        summary,
                        phone,
                    },
                }])
                .map_err(|e| e.to_string())?;
            let id = opened[0].ticket.expect("an opening names its ticket");
            println!("{id}: opened");
            append(id, actor, EventKind::Committed { deadline_ms })?;
        }
        TicketCommand::Dispatch {
            id,
            department,
            person,
            actor,
        } => append(
            known(id)?,
            actor,
            EventKind::Dispatched { department, person },
        )?,
        TicketCommand::Resolve { id, note, actor } => {
            append(known(id)?, actor, EventKind::Resolved { note })?
        }
        TicketCommand::Confirm { id, actor } => {
            append(known(id)?, actor, EventKind::ConfirmedByOwner)?
        }
        TicketCommand::Reopen { id, reason, actor } => {
            append(known(id)?, actor, EventKind::Reopened { reason })?
        }
        TicketCommand::Stress {
            writers,
            events,
            tag,
        } => stress(store, writers, events, &tag),
    }
    Ok(())
}

/// Appends `events` call events from `writers` threads; prints every id once
/// the store acknowledged it (stdout is flushed per line).
fn stress(store: Store, writers: usize, events: usize, tag: &str) {
    use std::io::Write;
    let store = std::sync::Arc::new(store);
    let per_writer = events.div_ceil(writers.max(1));
    let handles: Vec<_> = (0..writers.max(1))
        .map(|w| {
            let store = store.clone();
            let tag = tag.to_string();
            std::thread::spawn(move || {
                let stdout = std::io::stdout();
                for i in 0..per_writer {
                    let event = NewEvent {
                        ticket: None,
                        call: Some(format!("{tag}-w{w}-{i}")),
                        at_ms: now_ms(),
                        actor: Actor::System,
                        kind: EventKind::CallStarted {
                            from: format!("w{w}"),
                            to: "100".into(),
                            number: String::new(),
                            outbound: false,
                        },
                    };
                    let Ok(stored) = store.append_blocking(vec![event]) else {
                        return;
                    };
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "acked {} {tag}-w{w}-{i}", stored[0].id.0);
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    if !hotline::runtime::without_huge_pages() {
        tracing::debug!("transparent huge pages left as the system has them");
    }
    let (config, origin) = match &path {
        Some(p) => match Config::load(p) {
            Ok(c) => (c, p.clone()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => (Config::default(), PathBuf::from("(embedded defaults)")),
    };
    let prompts = match config.load_prompts(&origin) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let menu = match config.load_menu(&origin, &prompts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let agents = match config.load_agents(&origin) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let users = match config.load_users(&origin, agents.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rota = match config.load_rota(&origin) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let loaded = hotline::runtime::Loaded {
        prompts,
        menu,
        agents,
        users,
        rota,
    };
    if let Some(settings) = config.cluster_settings() {
        return runtime.block_on(async move {
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            match hotline::cluster::node::run(settings, config, loaded, stop).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        });
    }
    runtime.block_on(async move {
        let hotline = match Hotline::bind(config.clone(), loaded, None).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let sip = hotline.local_addr();
        let tls = config
            .sip
            .tls_listen
            .map(|a| format!(", tls {a}"))
            .unwrap_or_default();
        println!(
            "hotline listening: SIP udp+tcp {sip}{tls}, RTP {}:{}-{}, prompts {} ({}), config {}",
            config.media.ip,
            config.media.rtp_port_min,
            config.media.rtp_port_max,
            config.prompts.dir.display(),
            config.prompts.language,
            origin.display()
        );
        // On a worker, not this thread: what the switch wakes (the media
        // task, the store's readers) goes to that worker's own queue and
        // runs without a thread woken for it.
        let serving = tokio::spawn(hotline.serve(shutdown_signal()));
        match serving.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: the switch stopped: {e}");
                ExitCode::from(1)
            }
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
