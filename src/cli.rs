//! The command line: flags defined once (clap), parsed, dispatched. Errors are printed once,
//! here, and decide the exit code.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::bridge::Bridge;
use crate::config::{Overrides, Settings};
use crate::error::{Error, code};
use crate::host::Host;
use crate::ops::{Flags, Target};
use crate::output;

/// `opsh --version`: the release, and the commit it was built from with that commit's date
/// (build.rs), so a report from the field names the exact source.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_OPSH_COMMIT"),
    ", ",
    env!("BUILD_OPSH_DATE"),
    ")"
);

/// The operations shell of the youtube_agent stack: procedures of the operations guide as
/// scripts, a REPL for investigation, exit codes for cron and Nagios.
#[derive(Parser, Debug)]
#[command(name = "opsh", version = VERSION, about, long_about = None)]
#[command(
    after_help = "Run a procedure: opsh <procedure> [key=value]…   (opsh scripts lists them)\n\
Exit codes: 0 ok, 1 warning, 2 critical, 3 unknown (usage, script error, refused), 130 interrupted."
)]
pub struct Cli {
    /// Evaluate Rhai code and print its result
    #[arg(short = 'e', long = "eval", value_name = "CODE")]
    pub eval: Option<String>,

    /// Print exactly one JSON document on stdout (logs go to stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// Read this configuration file instead of ./opsh.toml or ~/.config/opsh/opsh.toml
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Answer confirmations with yes (for unattended runs)
    #[arg(long, global = true)]
    pub yes: bool,

    /// Report what destructive steps would do without doing them
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// End the whole run after this long, e.g. 30s, 10m, 1h
    #[arg(long, global = true, value_name = "DUR")]
    pub timeout: Option<String>,

    /// Only warnings and errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr (-vv for trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The output: text, json (as --json), prometheus (metrics for node_exporter's textfile collector) or nagios (a plugin's output)
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::runner::Format>,

    /// Mark statuses with emoji: auto (on a terminal; words such as WARNING in pipes and files), always, never [setting output.emoji]
    #[arg(long, global = true, value_name = "WHEN", value_parser = ["auto", "always", "never"])]
    pub emoji: Option<String>,

    /// Write the output to FILE atomically (temp file in its folder, then rename) instead of stdout
    #[arg(long, global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Run against the named targets of opsh.toml ([targets.NAME]); several, comma-separated, run in turn into one report
    #[arg(
        long,
        global = true,
        env = "OPSH_TARGET",
        value_name = "NAME[,NAME]",
        value_delimiter = ','
    )]
    pub target: Vec<String>,

    /// A procedure that changes data and is already running elsewhere: wait up to DUR for it instead of exiting 3
    #[arg(long, global = true, value_name = "DUR")]
    pub wait_lock: Option<String>,

    /// Also log to PATH.YYYY-MM-DD (a new file each day, 30 kept), with timestamps
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// How log events are written: text or json (one object per line)
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a procedure by name, or a script file, with key=value arguments
    Run {
        /// A procedure name (see `opsh scripts`) or a path to a .rhai file
        script: String,
        /// Arguments the script sees in ARGS, as key=value
        #[arg(value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// List the procedures: name, origin (bundled/site) and description
    Scripts {
        /// The README's table of bundled procedures, as Markdown
        #[arg(long, hide = true)]
        markdown: bool,
    },
    /// Show the effective configuration and where each value came from (secrets redacted)
    Config,
    /// Add what the schema lacks (with --dry-run: list the changes)
    Migrate,
    /// The unattended runs ([[schedule]] in opsh.toml) and their next run; install or remove them
    Schedule {
        #[command(subcommand)]
        action: Option<ScheduleAction>,
    },
    /// The recent destructive actions: who, where, what, how many, how it ended
    Audit {
        /// At most this many records, newest first
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// The registered Rhai functions: signature, options, examples (one function or module in full)
    Api {
        /// A function (`jobs::reset_stuck`) or a module (`jobs`)
        name: Option<String>,
        /// The README's API section, as Markdown
        #[arg(long, hide = true)]
        markdown: bool,
    },
    /// The whole stack on one screen, refreshed (top.refresh); keys act on it (? lists them)
    Top {
        /// Print one frame as text and exit (for scripts and tests)
        #[arg(long)]
        once: bool,
    },
    /// Show a procedure's description and declared arguments
    #[command(hide = true)]
    Describe { script: String },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, opsh(1), as roff (`make install` installs it)
    #[command(name = "__man", hide = true)]
    Man,
    /// Completion candidates for the last word (used by the completion scripts)
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
    #[command(external_subcommand)]
    Procedure(Vec<String>),
}

#[derive(Subcommand, Debug)]
pub enum ScheduleAction {
    /// Write /etc/cron.d/opsh (or systemd units with --systemd) from the schedule
    Install {
        /// systemd .service and .timer units instead of a cron file
        #[arg(long)]
        systemd: bool,
        /// Write into this folder instead of /etc/cron.d (or /etc/systemd/system)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Remove what install wrote
    Remove {
        /// the systemd units instead of the cron file
        #[arg(long)]
        systemd: bool,
        /// The folder install wrote into
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs opsh with the process arguments and returns its exit code: the one a failed write to
/// stdout decided (141 when its reader went away), which ends a run without exiting on the spot,
/// else the run's.
pub fn main() -> std::process::ExitCode {
    let status = run_main();
    output::failed().unwrap_or(status).into()
}

fn run_main() -> u8 {
    // A bug must still end in one clear line, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        output::err(&format!(
            "opsh: internal error: {info}; please report this with the command that caused it\n"
        ));
    }));
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Known before parsing, so that even a usage error honours --json.
    let json = raw
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json" || a == "--format=json")
        || raw.windows(2).any(|w| w[0] == "--format" && w[1] == "json");
    let args = match utf8_args(&raw) {
        Ok(args) => args,
        Err(e) => {
            report_error(&e, json);
            return e.exit_code();
        }
    };
    let mut cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, json),
    };
    if cli.format == Some(crate::runner::Format::Json) {
        cli.json = true;
    }
    if let Err(message) = crate::logging::try_init(
        cli.quiet,
        cli.verbose,
        cli.log_file.as_deref(),
        cli.log_format,
    ) {
        crate::logging::init(cli.quiet, cli.verbose);
        let e = Error::Usage { message };
        report_error(&e, cli.json);
        return e.exit_code();
    }
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            report_error(&e, json);
            e.exit_code()
        }
        // The hook has printed the message; a bug is an unknown outcome, not a crash code.
        Err(_) => code::UNKNOWN,
    }
}

/// The arguments as UTF-8, or an error naming the first that is not (clap would panic).
fn utf8_args(raw: &[std::ffi::OsString]) -> Result<Vec<String>, Error> {
    raw.iter()
        .enumerate()
        .map(|(i, arg)| {
            crate::text::os_str(arg, &format!("argument {i}"))
                .map(str::to_string)
                .map_err(|message| Error::Usage { message })
        })
        .collect()
}

/// A command-line error from clap (or --help, --version): clap's text, or with --json one JSON
/// document on stdout (the text still goes to stderr for a person reading along).
fn usage_error(e: &clap::Error, json: bool) -> u8 {
    let status = if e.use_stderr() {
        code::UNKNOWN
    } else {
        code::OK
    };
    if !json {
        // A closed stdout while printing --help is as quiet as any other output.
        let _ = e.print();
        return status;
    }
    let text = e.render().to_string();
    let doc = match e.kind() {
        clap::error::ErrorKind::DisplayVersion => {
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commit": env!("BUILD_OPSH_COMMIT"),
                "date": env!("BUILD_OPSH_DATE"),
            })
        }
        _ if !e.use_stderr() => serde_json::json!({ "help": text }),
        _ => {
            // clap's message without its usage lines and indentation, on one line.
            let message = text
                .split("\n\n")
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            output::err(&text);
            serde_json::json!({
                "error": { "kind": "usage", "message": message },
                "exit_code": status,
            })
        }
    };
    output::out(&format!("{doc}\n"));
    status
}

/// `opsh [flags] help NAME` where NAME is no subcommand of clap's: `opsh [flags] describe NAME`.
fn help_for_procedure(args: &[String]) -> Option<Vec<String>> {
    let at = args.iter().skip(1).position(|a| !a.starts_with('-'))? + 1;
    let name = args.get(at + 1)?;
    let known = Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == name);
    (args[at] == "help" && !known && args.len() == at + 2).then(|| {
        let mut rewritten = args[..at].to_vec();
        rewritten.extend(["describe".to_string(), name.clone()]);
        rewritten
    })
}

/// `opsh <procedure> args… --flag` is `opsh --flag run <procedure> args…`: flags may follow the
/// procedure name, as they may follow `run`.
fn parse(args: &[String]) -> Result<Cli, clap::Error> {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // `opsh help <procedure>`: clap's own help knows only its subcommands.
        Err(e) => match help_for_procedure(args) {
            Some(rewritten) => return Cli::try_parse_from(rewritten),
            None => return Err(e),
        },
    };
    let Some(Command::Procedure(words)) = &cli.command else {
        return Ok(cli);
    };
    // `opsh <procedure> --help` describes the procedure, not `run`.
    if words[1..].iter().any(|w| w == "--help" || w == "-h") {
        let mut rewritten: Vec<String> = args
            .iter()
            .take_while(|a| *a != &words[0])
            .cloned()
            .collect();
        rewritten.extend(["describe".to_string(), words[0].clone()]);
        return Cli::try_parse_from(rewritten);
    }
    let mut rewritten: Vec<String> = args
        .iter()
        .take_while(|a| *a != &words[0])
        .cloned()
        .collect();
    rewritten.push("run".into());
    rewritten.extend(words.iter().cloned());
    Cli::try_parse_from(rewritten)
}

fn run(mut cli: Cli) -> Result<u8, Error> {
    if let Some(Command::Completions { shell }) = &cli.command {
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "opsh", &mut script);
        output::out(&String::from_utf8_lossy(&script));
        output::out(crate::complete::hook(*shell));
        return Ok(code::OK);
    }
    if let Some(Command::Man) = &cli.command {
        // Generated from the same definition as --help and the completions, so none can drift.
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .map_err(|e| Error::Usage {
                message: format!("cannot render the man page: {e}"),
            })?;
        output::out(&String::from_utf8_lossy(&page));
        return Ok(code::OK);
    }
    let overrides = Overrides {
        config_file: cli.config.clone(),
        timeout: cli.timeout.clone(),
        emoji: cli.emoji.clone(),
    };
    let mut settings = Settings::load(&overrides)?;
    output::set_emoji(settings.text(crate::config::key::OUTPUT_EMOJI));
    cli.target.retain(|t| !t.trim().is_empty());
    let several = cli.target.len() > 1;
    if let [name] = cli.target.as_slice() {
        settings = settings.for_target(name.trim())?;
    }
    if several && !matches!(cli.command, Some(Command::Run { .. })) {
        return Err(Error::Usage {
            message: "--target with several names runs a procedure against each; other commands take one target".into(),
        });
    }
    if (cli.output.is_some()
        || matches!(
            cli.format,
            Some(crate::runner::Format::Prometheus | crate::runner::Format::Nagios)
        ))
        && !matches!(cli.command, Some(Command::Run { .. }))
    {
        return Err(Error::Usage {
            message:
                "--output, --format prometheus and --format nagios apply to running a procedure"
                    .into(),
        });
    }
    if let Some(Command::Config) = &cli.command {
        return Ok(output::config(&settings, cli.json));
    }
    if let Some(Command::Schedule { action }) = &cli.command {
        return schedule(&settings, action.as_ref(), cli.json, cli.dry_run);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the async runtime: {e}")))?;
    if let Some(Command::Top { once }) = &cli.command {
        // Before the Ctrl-C handler: in the view Ctrl-C is a key, and --once ends on it.
        let options = crate::top::Options {
            once: *once,
            config: cli.config.clone(),
        };
        let status = crate::top::run(&settings, runtime.handle(), &options);
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        return status;
    }
    let bridge = Bridge::new(runtime.handle().clone());
    bridge.install_ctrl_c();
    let flags = Flags {
        dry_run: cli.dry_run,
        yes: cli.yes,
        json: cli.json,
    };
    if let Some(Command::Run { script, args }) = &cli.command {
        let wait_lock = cli
            .wait_lock
            .as_deref()
            .map(|d| {
                crate::duration::parse(d).map_err(|why| Error::Usage {
                    message: format!("--wait-lock {d}: {why}"),
                })
            })
            .transpose()?;
        let options = crate::runner::Options {
            format: cli.format.unwrap_or(if cli.json {
                crate::runner::Format::Json
            } else {
                crate::runner::Format::Text
            }),
            output: cli.output.clone(),
            wait_lock,
            targets: if several {
                cli.target.clone()
            } else {
                Vec::new()
            },
        };
        let status = crate::runner::run(&settings, &bridge, flags, script, args, &options);
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        return status;
    }
    if let Some(Command::Audit { limit }) = &cli.command {
        let listing = crate::ops::audit::list(&settings, *limit);
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        return Ok(output::audit(&listing, cli.json));
    }
    let mut host = Host::new(Target::new(settings, bridge, flags), cli.json);
    let status = dispatch(&mut host, cli);
    // Clients close their connections on drop, which needs the runtime.
    {
        let _context = runtime.enter();
        drop(host);
    }
    // Blocking tasks (a dropped query's connection) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    status
}

fn dispatch(host: &mut Host, cli: Cli) -> Result<u8, Error> {
    if cli.eval.is_some() && cli.command.is_some() {
        return Err(Error::Usage {
            message: "-e runs code on its own; drop the command or -e".into(),
        });
    }
    let json = cli.json;
    match cli.command {
        None => match cli.eval {
            Some(code) => Ok(output::outcome(host.eval(&code)?, json)),
            None => Ok(crate::repl::run(host, json)),
        },
        Some(Command::Run { script, args }) => {
            let script = host.catalog().resolve(&script)?;
            let declared = crate::host::params::declared(&script.display, &script.source)?;
            let args = crate::host::params::apply(
                &script.name,
                &declared,
                crate::host::params::parse_words(&args)?,
                host.settings(),
            )?;
            Ok(output::outcome(host.run_script(&script, args)?, json))
        }
        Some(Command::Describe { script }) => {
            let script = host.catalog().resolve(&script)?;
            let declared = crate::host::params::declared(&script.display, &script.source)?;
            Ok(output::describe(&script, &declared, host.settings(), json))
        }
        Some(Command::Complete { words }) => {
            let candidates: String = crate::complete::candidates(host, &Cli::command(), &words)
                .into_iter()
                .map(|c| format!("{c}\n"))
                .collect();
            output::out(&candidates);
            Ok(code::OK)
        }
        Some(Command::Api { name, markdown }) => {
            let specs = crate::api::select(host.specs(), name.as_deref())?;
            Ok(output::api(&specs, name.is_some(), markdown, json))
        }
        Some(Command::Scripts { markdown: true }) => {
            Ok(output::procedures::print(&procedure_docs(host)))
        }
        Some(Command::Scripts { .. }) if json => {
            output::out(&format!(
                "{}\n",
                serde_json::Value::Array(procedure_docs(host))
            ));
            Ok(code::OK)
        }
        Some(Command::Scripts { .. }) => Ok(output::scripts(&host.listed(), json)),
        Some(Command::Migrate) => Ok(output::migrated(host.call_builtin("db::migrate()")?, json)),
        Some(other) => Err(Error::Usage {
            message: format!("unexpected command {other:?}"),
        }),
    }
}

/// `opsh scripts --json`: each procedure with its declared arguments and whether it changes
/// data; the README's table is made from the same documents.
fn procedure_docs(host: &Host) -> Vec<serde_json::Value> {
    host.listed()
        .iter()
        .map(|l| {
            let mut doc = serde_json::to_value(l).unwrap_or_default();
            let script = host.catalog().find(&l.name).ok();
            let arguments = script
                .as_ref()
                .and_then(|s| crate::host::params::declared(&s.display, &s.source).ok())
                .unwrap_or_default();
            doc["arguments"] = serde_json::to_value(arguments).unwrap_or_default();
            // `// changes: data`: runs under its run lock.
            doc["changes_data"] = script
                .is_some_and(|s| crate::host::params::changes_data(&s.source))
                .into();
            doc
        })
        .collect()
}

fn report_error(e: &Error, json: bool) {
    // Stdout went away: nothing to say, the exit status says it.
    if matches!(e, Error::Output { .. }) {
        return;
    }
    output::error(e);
    // Last: a closed stdout fails this write (noted, opsh exits 141), and the message above is
    // out already.
    if json {
        let doc = serde_json::json!({
            "error": { "kind": e.kind(), "message": anstream::adapter::strip_str(&e.to_string()).to_string() },
            "exit_code": e.exit_code(),
        });
        output::out(&format!("{doc}\n"));
    }
}

/// `opsh schedule [install|remove]`.
fn schedule(
    settings: &Settings,
    action: Option<&ScheduleAction>,
    json: bool,
    dry_run: bool,
) -> Result<u8, Error> {
    use crate::schedule as sched;
    let paths = sched::Paths::of(settings);
    let default_dir = |systemd: bool| {
        PathBuf::from(if systemd {
            "/etc/systemd/system"
        } else {
            "/etc/cron.d"
        })
    };
    let (done, files) = match action {
        None => {
            let entries = sched::entries(settings)?;
            let now = chrono::Local::now();
            let rows: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "name": e.name,
                        "procedure": e.procedure,
                        "arguments": e.arguments,
                        "cron": e.cron,
                        "target": e.target,
                        "next_run": sched::next_run(e, now).map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string()),
                        "command": sched::command(e, &paths).join(" "),
                    })
                })
                .collect();
            if json {
                output::out(&format!("{}\n", serde_json::Value::Array(rows)));
            } else {
                let mut text = String::new();
                for r in &rows {
                    text.push_str(&format!(
                        "{:<24} {:<14} next {}\n    {}\n",
                        r["name"].as_str().unwrap_or(""),
                        r["cron"].as_str().unwrap_or(""),
                        r["next_run"].as_str().unwrap_or("never"),
                        r["command"].as_str().unwrap_or("")
                    ));
                }
                output::out(&text);
            }
            return Ok(code::OK);
        }
        Some(ScheduleAction::Install { systemd, dir }) => {
            let entries = sched::entries(settings)?;
            let dir = dir.clone().unwrap_or_else(|| default_dir(*systemd));
            if dry_run {
                let text = if *systemd {
                    let mut t = String::new();
                    for e in &entries {
                        for (name, unit) in
                            sched::units(e, &paths).map_err(|why| Error::Config {
                                message: format!("[[schedule]] `{}`: {why}", e.name),
                            })?
                        {
                            t.push_str(&format!("==> {} <==\n{unit}", dir.join(name).display()));
                        }
                    }
                    t
                } else {
                    format!(
                        "==> {} <==\n{}",
                        dir.join(sched::CRON_FILE).display(),
                        sched::cron_file(&entries, &paths)
                    )
                };
                output::out(&text);
                return Ok(code::OK);
            }
            (
                "installed",
                sched::install(&entries, &paths, *systemd, &dir)?,
            )
        }
        Some(ScheduleAction::Remove { systemd, dir }) => {
            let dir = dir.clone().unwrap_or_else(|| default_dir(*systemd));
            ("removed", sched::remove(*systemd, &dir)?)
        }
    };
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    if json {
        output::out(&format!("{}\n", serde_json::json!({ done: names })));
    } else if names.is_empty() {
        output::out(&format!("nothing {done}\n"));
    } else {
        output::out(&format!("{done}: {}\n", names.join(", ")));
    }
    Ok(code::OK)
}
