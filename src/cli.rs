//! The command line, as typed (clap derive). `src/main.rs` turns it into a run.
//!
//! `detect` is the default subcommand: `trailhound file.json.gz` and
//! `cat x | trailhound` are `trailhound detect …`. Subcommand names win over paths
//! (write `./rules` for a directory called `rules`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::rules::Level;

/// Exit codes, in one place.
pub mod exit {
    /// Ran to the end (with or without findings, malformed records included).
    pub const OK: i32 = 0;
    /// `--fail-on` was reached, or `rules validate` / `rules test` found failures.
    pub const FINDINGS_OR_FAILURES: i32 = 1;
    /// Usage, configuration or rule error before anything ran.
    pub const USAGE: i32 = 2;
    /// Ran, but an input could not be opened or read to its end.
    pub const INPUT_ERROR: i32 = 3;
}

const AFTER_HELP: &str = "\
Examples:
  cat 123456789012_CloudTrail_us-east-1_20241201T0000Z_abc.json.gz | trailhound
  trailhound detect logs/ more.json.gz --rules my-rules/ --dead-letter bad.ndjson
  zcat *.json.gz | trailhound --stats json 2>stats.json | jq .rule.title
  trailhound rules validate my-rules/ --format sarif > rules.sarif
  trailhound rules test my-rules/ --format junit > rules-junit.xml
  trailhound rules explain aws_console_login_without_mfa event.json

Exit codes: 0 ran to the end; 1 --fail-on level reached, or rule validation/tests failed;
2 usage, configuration or rule error; 3 an input could not be opened or read to its end.";

/// `trailhound --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("TRAILHOUND_GIT"),
    ")"
);

/// Streaming detection for AWS CloudTrail: Sigma rules on every record, findings as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "trailhound", version = VERSION, about, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: detect).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the default `detect` command.
    #[command(flatten)]
    pub detect: DetectArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read CloudTrail records from files, stdin or s3:// URLs and print findings (the default).
    Detect(Box<DetectArgs>),
    /// Run as a daemon: read the config file's `sources:` (S3, SQS, CloudWatch Logs,
    /// stdin, files) until stopped, checkpointing what is done.
    Run(Box<DetectArgs>),
    /// Validate, test, list or explain rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Maintain a Parquet archive.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `trailhound man > trailhound.1`.
    Man,
}

/// `trailhound config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read a configuration file and report every problem (exit 2 on an error).
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// `trailhound archive …`
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Merge each partition's files into one (atomically; duplicate tp_ids dropped).
    Compact {
        /// The archive root (as given to --archive).
        root: PathBuf,
        /// Also compact partitions dated today or later (only when nothing writes to them).
        #[arg(long)]
        all: bool,
    },
}

/// `trailhound rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rules against schemas/rule.schema.json and compile them: duplicate ids,
    /// tag format, selections no condition uses, regexes, unknown keys (warnings; errors
    /// with --strict). Each problem as file:line:col; exit 1 on any error.
    Validate(ValidateArgs),
    /// Run the tests beside each rule (`x.yml` is tested by `x.tests.yml`); exit 1 if a
    /// true positive does not fire or a true negative fires.
    Test(TestArgs),
    /// List the rules that load: id, title, level, tags, kind, source file.
    List(ListArgs),
    /// Show which selections and conditions of a rule matched an event, and which did not.
    Explain(ExplainArgs),
}

/// Output of `rules validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// `file:line:col: error: message [check]`, one per line, then a summary.
    Text,
    /// One JSON object: counts and every diagnostic.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning and other SARIF viewers).
    Sarif,
    /// JUnit XML: one test case per rule file.
    Junit,
}

/// Output of `rules test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    /// A line per failure, then a summary.
    Text,
    /// One JSON object: counts and every case.
    Json,
    /// JUnit XML: a test suite per tests file, a test case per case.
    Junit,
}

/// Output of `rules list` and `rules explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns (list) or an indented explanation (explain).
    Table,
    /// JSON.
    Json,
}

/// `rules validate`
#[derive(Debug, Args, Clone)]
pub struct ValidateArgs {
    /// Which rules.
    #[command(flatten)]
    pub set: RuleSetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

/// `rules test`
#[derive(Debug, Args, Clone)]
pub struct TestArgs {
    /// Which rules.
    #[command(flatten)]
    pub set: RuleSetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TestFormat::Text)]
    pub format: TestFormat,
}

/// `rules list`
#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    /// Which rules.
    #[command(flatten)]
    pub set: RuleSetArgs,
    /// Which of them run (as in detect).
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Only rules at or above this level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub min_level: Option<Level>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// `rules explain RULE EVENT`
#[derive(Debug, Args, Clone)]
pub struct ExplainArgs {
    /// A rule id or name (of the built-in pack or of --rules), or a rule file (every
    /// rule in it).
    pub rule: String,
    /// A JSON record, a file of them (NDJSON, {"Records":[…]}, a JSON array; gzip is
    /// detected), or `-` for stdin. Each record is explained.
    pub event: PathBuf,
    /// More rule files or directories to find RULE in (and the rules a correlation reads).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in pack.
    #[arg(long)]
    pub no_builtin: bool,
    /// Values of `%name%` placeholders for the `expand` modifier.
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Which loaded rules run (`detect`, `run`, `rules list`).
#[derive(Debug, Args, Clone, Default)]
pub struct TuningArgs {
    /// Run only this rule (id or name; repeatable or comma-separated). Rules that a
    /// selected correlation reads run too.
    #[arg(long = "rule", value_name = "ID", value_delimiter = ',')]
    pub rule: Vec<String>,
    /// Do not run this rule (id or name; repeatable or comma-separated).
    #[arg(long = "exclude-rule", value_name = "ID", value_delimiter = ',')]
    pub exclude_rule: Vec<String>,
    /// Run only rules with one of these tags (comma-separated; a trailing * matches a
    /// prefix: attack.t1078*).
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Sigma filter documents (files or directories) to apply to the rules they name.
    #[arg(long = "filters", value_name = "PATH")]
    pub filters: Vec<PathBuf>,
}

/// Which rules a `rules` subcommand works on.
#[derive(Debug, Args, Clone)]
pub struct RuleSetArgs {
    /// Rule files or directories (default: only the built-in pack).
    pub paths: Vec<PathBuf>,
    /// Leave out the built-in pack (the default when paths are given).
    #[arg(long)]
    pub no_builtin: bool,
    /// Include the built-in pack even when paths are given.
    #[arg(long, conflicts_with = "no_builtin")]
    pub builtin: bool,
    /// Treat warnings (unknown keys, unknown tag namespaces) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Values of `%name%` placeholders for the `expand` modifier: a YAML mapping of
    /// name to a list of values.
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
}

/// How the run summary is printed on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// One human-readable line.
    Human,
    /// One JSON object as the last line of stderr.
    Json,
    /// No summary.
    None,
}

/// Options of `detect`.
#[derive(Debug, Args, Clone)]
pub struct DetectArgs {
    /// Files or directories to read (recursively); none or `-` reads stdin. Gzip is
    /// detected by content; framing (NDJSON, {"Records":[…]}, JSON array, CloudWatch
    /// Logs payload) per input.
    pub inputs: Vec<PathBuf>,
    /// Configuration file (YAML; docs/config.md). Flags given here win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rule file or directory to add to the built-in pack (repeatable).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Do not load the built-in rule pack (only --rules).
    #[arg(long)]
    pub no_builtin: bool,
    /// Any rule error or warning stops the run before it starts (exit 2).
    #[arg(long)]
    pub strict: bool,
    /// Values of `%name%` placeholders for the `expand` modifier: a YAML mapping of
    /// name to a list of values.
    #[arg(long, value_name = "FILE")]
    pub placeholders: Option<PathBuf>,
    /// Archive every record to Parquet under this root, in Tailpipe's
    /// `tp_table=aws_cloudtrail_log/tp_partition=…/tp_index=…/tp_date=…` layout.
    #[arg(long, value_name = "ROOT")]
    pub archive: Option<PathBuf>,
    /// `tp_partition` of archived rows (default: `files`, or `stdin`).
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Close an archive file once it holds this many bytes [default: 128 MiB].
    #[arg(long, value_name = "BYTES")]
    pub archive_max_bytes: Option<usize>,
    /// Close an archive file this many seconds after it was opened [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub archive_max_age_s: Option<u64>,
    /// Only run rules at or above this level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub min_level: Option<Level>,
    /// Which loaded rules run.
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Send findings to these Kafka brokers (with --kafka-topic) instead of stdout;
    /// replaces the config's `sinks:`.
    #[arg(long, value_name = "HOST:PORT,…", requires = "kafka_topic")]
    pub kafka_brokers: Option<String>,
    /// The Kafka topic for findings.
    #[arg(long, value_name = "TOPIC", requires = "kafka_brokers")]
    pub kafka_topic: Option<String>,
    /// Message key template over the finding (default "{id}").
    #[arg(long, value_name = "TEMPLATE", requires = "kafka_brokers")]
    pub kafka_key: Option<String>,
    /// A librdkafka property for the Kafka sink (repeatable), e.g.
    /// security.protocol=SASL_SSL.
    #[arg(long, value_name = "KEY=VALUE", requires = "kafka_brokers")]
    pub kafka_option: Vec<String>,
    /// Write findings to stdout as well as to the Kafka or configured sinks.
    #[arg(long)]
    pub stdout: bool,
    /// Write malformed records to this file (NDJSON, with reason and position).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Leave the original record out of findings.
    #[arg(long)]
    pub no_record: bool,
    /// Do not reload the rules when their files change or on SIGHUP (reloading is on
    /// for `run` and for `detect` reading stdin; also `rules.reload`).
    #[arg(long)]
    pub no_reload: bool,
    /// Finding format of sinks that name none (also `format:`): native JSON,
    /// OCSF 1.3.0 Detection Finding, ECS 8.x, or a compact text line.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::sink::format::FindingFormat>,
    /// Colour in the text format: auto (when stdout is a terminal and NO_COLOR is
    /// unset), always, never.
    #[arg(long, value_enum, default_value_t = crate::sink::format::ColorChoice::Auto, value_name = "WHEN")]
    pub color: crate::sink::format::ColorChoice,
    /// Worker threads (default: number of cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Run summary on stderr.
    #[arg(long, value_enum, default_value_t = StatsFormat::Human, value_name = "FORMAT")]
    pub stats: StatsFormat,
    /// Write the summary as JSON to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,
    /// Exit with 1 if any finding at or above this level was written.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub fail_on: Option<Level>,
    /// Longest record accepted; longer ones are dead-lettered unread.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_record_bytes: usize,
    /// Largest decompressed size of one object or file read whole (`1GiB`, `64MiB`, or
    /// bytes): a gzip bomb stops there, its records up to the limit processed, and the
    /// input counts as failed.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size_arg)]
    pub max_inflated_bytes: usize,
    /// Pre-storage filter: a SQL boolean expression over the archive's columns, e.g.
    /// "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')"
    /// (repeatable, AND-ed; added to the config file's `filter:`).
    #[arg(long = "filter", value_name = "SQL")]
    pub filter: Vec<String>,
    /// What filtered records skip: the archive only (rules still see them), or both.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub filter_applies_to: Option<crate::config::FilterAppliesTo>,
    /// Keep records whose eventID repeats (dedup is on by default, 15 min window).
    #[arg(long)]
    pub no_dedup: bool,
    /// Dedup window in event time (e.g. 15m) [default: 15m].
    #[arg(long, value_name = "DURATION")]
    pub dedup_window: Option<String>,
    /// How late (in event time) a record may arrive and still count in correlation
    /// windows [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub allowed_lateness: Option<String>,
    /// Groups kept per correlation before the idlest is evicted [default: 1000000].
    #[arg(long, value_name = "N")]
    pub max_groups: Option<usize>,
    /// Only records whose event time is at or after this (2024-12-01 or RFC 3339);
    /// with s3:// inputs, only the days from here on are listed.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records whose event time is before this (exclusive).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// s3:// inputs: only these accounts (comma-separated or repeated).
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// s3:// inputs: only these regions (comma-separated or repeated).
    #[arg(long = "regions", value_name = "REGION", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// s3:// inputs: objects fetched at once [default: 64].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// AWS profile for s3:// inputs (else the default credential chain).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region for s3:// inputs.
    #[arg(long = "region", value_name = "REGION")]
    pub aws_region: Option<String>,
    /// Another S3 endpoint (MinIO, LocalStack, a VPC endpoint).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (most S3-compatible servers need it).
    #[arg(long)]
    pub s3_force_path_style: bool,
    /// A `connections:` entry of the config file for s3:// inputs.
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
    /// Where checkpoints are kept (also `state_dir:`); s3:// inputs resume from them.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Progress on stderr: a bar on a terminal; otherwise a one-line status (records,
    /// records/s, findings) every --progress-interval.
    #[arg(long)]
    pub progress: bool,
    /// How often the status line of --progress is written when stderr is not a terminal.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub progress_interval: std::time::Duration,
    /// Serve Prometheus metrics on http://ADDR/metrics and readiness on /health (also
    /// `metrics: {address}`), e.g. 127.0.0.1:9598.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Log level for stderr (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format on stderr: text (colour on a terminal) or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines: timestamp, level, message and fields (for log shippers).
    Json,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 10s, 1m)"))
}

fn parse_size_arg(s: &str) -> Result<usize, String> {
    crate::config::parse_size(s).ok_or_else(|| format!("{s:?} is not a size (e.g. 64MiB)"))
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s)
        .ok_or_else(|| format!("unknown level '{s}' (informational, low, medium, high, critical)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn detect_is_the_default() {
        let c = Cli::parse_from(["trailhound", "a.json", "--no-record"]);
        assert!(c.command.is_none());
        assert_eq!(c.detect.inputs, [PathBuf::from("a.json")]);
        assert!(c.detect.no_record);
        let c = Cli::parse_from(["trailhound", "rules", "test", "x/"]);
        assert!(matches!(
            c.command,
            Some(Command::Rules(RulesCommand::Test(_)))
        ));
        let c = Cli::parse_from(["trailhound", "./rules"]);
        assert_eq!(c.detect.inputs, [PathBuf::from("./rules")]);
    }
}
