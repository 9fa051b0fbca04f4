//! Commands, from parsed arguments to an exit code: the binary's `main` only parses,
//! sets up logging and signals, and calls into here.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cli::{DetectArgs, StatsFormat, exit};
use crate::config::{ConfigError, ConfigFile};
use crate::pipeline::{self, PipelineConfig};
use crate::rules::{CompileContext, LoadOptions, LoadReport, RulePack, RulePathError};
use crate::sink::{Output, SinkError};

pub mod reload;
pub mod rules;

/// A command that could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule path does not exist or cannot be read.
    #[error(transparent)]
    RulePath(#[from] RulePathError),
    /// Rules failed to load under `--strict`.
    #[error("{0} rule error(s); not running (--strict)")]
    Strict(usize),
    /// The output cannot be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The placeholder file cannot be read or is not a mapping of lists of strings.
    #[error("placeholders file {path}: {message}")]
    Placeholders {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The archive cannot be opened or written.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// The configuration file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command line that names something that is not there.
    #[error("{0}")]
    Usage(String),
    /// Whoever read stdout stopped (`| head`).
    #[error("stdout closed")]
    StdoutClosed,
    /// The stats file cannot be written.
    #[error("stats file {path}: {source}")]
    StatsFile {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl AppError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::RulePath(_)
            | AppError::Strict(_)
            | AppError::Placeholders { .. }
            | AppError::Config(_)
            | AppError::Usage(_)
            | AppError::Sink(SinkError::Config { .. }) => exit::USAGE,
            AppError::Sink(_) | AppError::StatsFile { .. } | AppError::Archive(_) => {
                exit::INPUT_ERROR
            }
            AppError::StdoutClosed => exit::OK,
        }
    }
}

pub(crate) fn log_report(report: &LoadReport, strict: bool) {
    for e in &report.errors {
        tracing::error!("rule skipped: {e}");
    }
    for w in &report.warnings {
        if strict {
            tracing::error!("{w}");
        } else {
            tracing::warn!("{w}");
        }
    }
    for (file, reason) in &report.skipped {
        tracing::info!("rule not loaded: {file}: {reason}");
    }
}

/// Reads a `--placeholders` file: `name: [value, …]` (a single string is one value).
pub fn load_placeholders(path: Option<&std::path::Path>) -> Result<CompileContext, AppError> {
    let mut ctx = CompileContext::default();
    let Some(path) = path else { return Ok(ctx) };
    let fail = |message: String| AppError::Placeholders {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let map: std::collections::BTreeMap<String, OneOrMany> =
        serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?;
    for (k, v) in map {
        let values = match v {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        ctx.placeholders.insert(k, values);
    }
    Ok(ctx)
}

/// Loads a rule pack and logs what was wrong with it.
pub fn load_rules(
    opts: &LoadOptions,
    ctx: &CompileContext,
    strict: bool,
) -> Result<(RulePack, LoadReport), AppError> {
    let (pack, report) = RulePack::load_with(opts, ctx)?;
    log_report(&report, strict);
    let problems = report.errors.len() + if strict { report.warnings.len() } else { 0 };
    if strict && problems > 0 {
        return Err(AppError::Strict(problems));
    }
    Ok((pack, report))
}

/// Whether the run is a batch (`detect`) or the daemon (`run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Detect,
    Run,
}

/// `trailhound detect`.
pub fn detect(args: &DetectArgs, shutdown: Arc<AtomicBool>) -> Result<i32, AppError> {
    execute(args, shutdown, Mode::Detect)
}

/// `trailhound run --config F`: the daemon.
pub fn run(args: &DetectArgs, shutdown: Arc<AtomicBool>) -> Result<i32, AppError> {
    execute(args, shutdown, Mode::Run)
}

fn execute(args: &DetectArgs, shutdown: Arc<AtomicBool>, mode: Mode) -> Result<i32, AppError> {
    let cli_err = |message: String| {
        AppError::Config(ConfigError {
            file: "<command line>".into(),
            location: None,
            message,
        })
    };
    let mut file = match &args.config {
        Some(p) => {
            let (cfg, warnings) = ConfigFile::load(p)?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            if mode == Mode::Detect && !cfg.sources.is_empty() {
                tracing::warn!(
                    "sources: are read by `trailhound run`; detect reads its INPUT paths or stdin"
                );
            }
            cfg
        }
        None if mode == Mode::Run => {
            return Err(cli_err("run needs --config FILE with sources:".into()));
        }
        None => ConfigFile::default(),
    };
    if mode == Mode::Run {
        if !args.inputs.is_empty() {
            return Err(cli_err(
                "run takes no INPUT; its inputs are the config file's sources:".into(),
            ));
        }
        if file.sources.is_empty() {
            return Err(cli_err(format!(
                "{}: run needs at least one entry in sources:",
                args.config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        }
    }
    let rules_cfg = file.rules.unwrap_or_default();
    let mut paths = args.rules.clone();
    paths.extend(rules_cfg.paths.iter().cloned());
    // Sigma filter documents load like rules; they attach to the rules they name.
    paths.extend(args.tuning.filters.iter().cloned());
    paths.extend(rules_cfg.filters.iter().cloned());
    let opts = LoadOptions {
        builtin: !args.no_builtin && rules_cfg.builtin.unwrap_or(true),
        paths,
    };
    let mut ctx = load_placeholders(args.placeholders.as_deref())?;
    if args.placeholders.is_none() {
        ctx.placeholders = rules_cfg.placeholders.clone();
    }
    let min_level = args.min_level.or_else(|| {
        rules_cfg
            .min_level
            .as_deref()
            .and_then(crate::rules::Level::parse)
    });
    let pick = |flag: &[String], cfg: &[String]| {
        if flag.is_empty() {
            cfg.to_vec()
        } else {
            flag.to_vec()
        }
    };
    let mut exclude = args.tuning.exclude_rule.clone();
    exclude.extend(rules_cfg.disable.iter().cloned());
    let selection = crate::rules::Selection {
        only: pick(&args.tuning.rule, &rules_cfg.enable),
        exclude,
        tags: pick(&args.tuning.tags, &rules_cfg.tags),
        min_level,
    };
    let source = reload::RuleSource {
        opts,
        ctx,
        strict: args.strict,
        selection,
    };
    let (pack, report) = load_rules(&source.opts, &source.ctx, args.strict)?;
    let (pack, unknown) = pack.select(&source.selection);
    let selection = &source.selection;
    let metrics_addr = args
        .metrics_addr
        .clone()
        .or_else(|| file.metrics.as_ref().map(|m| m.address.clone()));
    let health = crate::telemetry::health();
    if let Some(addr) = &metrics_addr {
        // Registered before the first request can arrive: unready until the sinks
        // are open and the sources started.
        health.set(
            "rules",
            true,
            format!("{} rules loaded", pack.rules().len()),
        );
        health.set("pipeline", false, "starting");
        crate::telemetry::serve(addr, health.clone())
            .map_err(|e| AppError::Usage(e.to_string()))?;
    }
    for u in &unknown {
        if selection.only.contains(u) {
            return Err(AppError::Usage(format!(
                "--rule / rules.enable names '{u}', but no loaded rule has that id or name (`trailhound rules list` shows them)"
            )));
        }
        tracing::warn!(
            "--exclude-rule / rules.disable names '{u}', but no loaded rule has that id or name"
        );
    }
    if pack.rules().is_empty() {
        tracing::warn!("no rules selected: every record is only counted and archived");
    }
    tracing::debug!(
        rules = pack.rules().len(),
        files = report.files,
        indexed_names = pack.index().keys(),
        always = pack.index().always().len(),
        "rules loaded"
    );
    let pack = Arc::new(pack);
    let mut cfg = PipelineConfig::default();
    let bound = |k: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                crate::source::s3::parse_time_bound(s).ok_or_else(|| {
                    cli_err(format!(
                        "--{k}: {s:?} is not a date (2024-12-01) or RFC 3339 time"
                    ))
                })
            })
            .transpose()
    };
    let (since, until) = (bound("since", &args.since)?, bound("until", &args.until)?);
    if since.is_some() || until.is_some() {
        let r = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
        if r.0 >= r.1 {
            return Err(cli_err("--since must be before --until".into()));
        }
        cfg.time_range = Some(r);
    }
    let state_dir = args.state_dir.clone().or_else(|| file.state_dir.clone());
    let (remote, local): (Vec<&PathBuf>, Vec<&PathBuf>) = args
        .inputs
        .iter()
        .partition(|p| p.to_str().is_some_and(|s| s.starts_with("s3://")));
    let mut live_sources = Vec::new();
    if mode == Mode::Run {
        live_sources = std::mem::take(&mut file.sources);
    } else if !remote.is_empty() {
        let conn = match &args.connection {
            Some(n) => crate::source::aws::ConnectionRef::Name(n.clone()),
            None => crate::source::aws::ConnectionRef::Inline(Box::new(
                crate::source::aws::Connection {
                    profile: args.profile.clone(),
                    region: args.aws_region.clone(),
                    endpoint_url: args.endpoint_url.clone(),
                    s3_force_path_style: args.s3_force_path_style,
                    ..Default::default()
                },
            )),
        };
        if !local.is_empty() {
            live_sources.push(crate::source::live::SourceConfig::Files(
                crate::source::live::FilesConfig {
                    name: Some("files".into()),
                    paths: local.iter().map(|p| (*p).clone()).collect(),
                },
            ));
        }
        for url in &remote {
            let mut c = crate::source::s3::from_url(&url.to_string_lossy()).map_err(&cli_err)?;
            c.name = Some(args.partition.clone().unwrap_or_else(|| "s3".into()));
            c.connection = Some(conn.clone());
            c.since = args.since.clone();
            c.until = args.until.clone();
            c.concurrency = args.concurrency;
            if !args.accounts.is_empty() {
                c.accounts = args.accounts.clone();
            }
            if !args.regions.is_empty() {
                c.regions = args.regions.clone();
            }
            if remote.len() > 1 {
                c.name = Some(format!("s3-{}", c.bucket));
            }
            let src = crate::source::live::SourceConfig::S3(c);
            src.validate(&file.connections)
                .map_err(|e| cli_err(format!("{}: {e}", url.display())))?;
            live_sources.push(src);
        }
    }
    let mut live = None;
    let mut missing = Vec::new();
    let feed = if live_sources.is_empty() {
        let (inputs, m) = crate::source::discover(&args.inputs);
        for e in &m {
            tracing::error!("input {e}");
        }
        missing = m;
        crate::source::Feed::Inputs(inputs)
    } else {
        let opts = crate::source::live::LiveOptions {
            follow: mode == Mode::Run,
            checkpoints: crate::source::checkpoint::Checkpoints::new(state_dir.as_deref()),
            state_dir: state_dir.clone(),
            progress: args.progress
                || (mode == Mode::Detect && std::io::IsTerminal::is_terminal(&std::io::stderr())),
        };
        for s in &live_sources {
            tracing::info!(source = %s.name(), kind = s.kind(), "starting source");
            if let crate::source::live::SourceConfig::Kafka(k) = s {
                for w in crate::source::kafka::partitioning_warnings(
                    &pack,
                    &s.name(),
                    k.key_field.as_deref(),
                ) {
                    tracing::warn!("{w}");
                }
            }
        }
        let connections = std::mem::take(&mut file.connections);
        let mut l = crate::source::live::start(live_sources, connections, opts, shutdown.clone())
            .map_err(&cli_err)?;
        let f = l.feed();
        live = Some(l);
        f
    };
    if let Some(t) = args.threads {
        cfg.threads = t.max(1);
        cfg.max_in_flight = 4 * cfg.threads + 4;
    }
    cfg.include_record = !args.no_record;
    // --progress without a terminal: a status line every --progress-interval.
    if args.progress && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        cfg.status_every = Some(args.progress_interval);
    }
    // On a terminal, a progress line (S3 listings have their own bar).
    cfg.progress_bar = args.progress
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && remote.is_empty()
        && mode == Mode::Detect;
    cfg.max_record_bytes = args.max_record_bytes.max(1);
    cfg.max_inflated_bytes = args.max_inflated_bytes.max(1) as u64;
    let config_name = || {
        args.config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<command line>".into())
    };
    let config_err = |message: String| {
        AppError::Config(ConfigError {
            file: config_name(),
            location: None,
            message,
        })
    };
    let mut filters = file.filter.clone();
    filters.extend(args.filter.iter().cloned());
    if !filters.is_empty() {
        let f = crate::filter::RecordFilter::compile(&filters)
            .map_err(|e| config_err(e.to_string()))?;
        cfg.filter = Some(Arc::new(f));
    }
    cfg.filter_applies_to_detection = args
        .filter_applies_to
        .or(file.filter_applies_to)
        .unwrap_or(crate::config::FilterAppliesTo::Archive)
        == crate::config::FilterAppliesTo::Both;
    let duration =
        |flag: Option<&String>, key: &str, file_value: Option<&String>, default: i64| match flag
            .or(file_value)
        {
            None => Ok(default),
            Some(s) => crate::config::parse_duration(s)
                .map(|d| d.as_micros() as i64)
                .ok_or_else(|| config_err(format!("{key}: {s:?} is not a duration (e.g. 15m)"))),
        };
    let dedup_file = file.dedup.as_ref();
    let corr_file = file.correlation.as_ref();
    let dedup_on = !args.no_dedup && dedup_file.and_then(|d| d.enabled).unwrap_or(true);
    let window = duration(
        args.dedup_window.as_ref(),
        "dedup.window",
        dedup_file.and_then(|d| d.window.as_ref()),
        15 * 60_000_000,
    )?;
    cfg.state.dedup_window = dedup_on.then_some(window);
    if let Some(n) = dedup_file.and_then(|d| d.max_entries) {
        cfg.state.dedup_max_entries = n.max(1);
    }
    cfg.state.limits.allowed_lateness = duration(
        args.allowed_lateness.as_ref(),
        "correlation.allowed_lateness",
        corr_file.and_then(|c| c.allowed_lateness.as_ref()),
        5 * 60_000_000,
    )?;
    if let Some(n) = args.max_groups.or(corr_file.and_then(|c| c.max_groups)) {
        cfg.state.limits.max_groups = n.max(1);
    }
    if let Some(n) = corr_file.and_then(|c| c.max_events_per_group) {
        cfg.state.limits.max_events_per_group = n.max(1);
    }
    if let Some(n) = corr_file.and_then(|c| c.max_events) {
        cfg.state.limits.max_state_events = n.max(1);
    }
    let dead_letter = args
        .dead_letter
        .clone()
        .or_else(|| file.dead_letter.as_ref().map(|d| d.path.clone()));
    let sinks = sink_configs(args, std::mem::take(&mut file.sinks)).map_err(&config_err)?;
    let formats = crate::sink::format::FormatOptions {
        default: match (args.format, file.format.as_deref()) {
            (Some(f), _) => f,
            (None, Some(f)) => crate::sink::format::FindingFormat::parse(f)
                .ok_or_else(|| config_err(format!("format: {f:?} is not a finding format")))?,
            (None, None) => crate::sink::format::FindingFormat::Native,
        },
        color: args.color,
        enrich: std::sync::Arc::new(
            crate::sink::format::Enrichment::from_yaml(&file.enrich).map_err(&config_err)?,
        ),
    };
    let out = Output::open(&sinks, dead_letter.as_deref(), shutdown.clone(), &formats)?;
    let archive_cfg = file.archive.as_ref();
    let archive_root = args
        .archive
        .clone()
        .or_else(|| archive_cfg.map(|a| a.root.clone()));
    let archive = match archive_root {
        Some(root) => {
            let partition = args
                .partition
                .clone()
                .or_else(|| archive_cfg.and_then(|a| a.partition.clone()))
                .unwrap_or_else(|| {
                    if args.inputs.is_empty() {
                        "stdin".into()
                    } else {
                        "files".into()
                    }
                });
            cfg.archive_partition = Some(partition.clone());
            if let Some(col) = archive_cfg.and_then(|a| a.tp_index.as_deref()) {
                let path = crate::archive::schema::cloudtrail_path(col)
                    .and_then(|p| crate::event::FieldPath::parse(&p).ok())
                    .ok_or_else(|| {
                        AppError::Config(ConfigError {
                            file: args
                                .config
                                .as_ref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default(),
                            location: None,
                            message: format!(
                                "archive.tp_index: {col:?} is not a column of aws_cloudtrail_log"
                            ),
                        })
                    })?;
                cfg.archive_tp_index = Some(path);
            }
            let max_file_bytes = args
                .archive_max_bytes
                .or_else(|| {
                    archive_cfg
                        .and_then(|a| a.max_bytes.as_deref())
                        .and_then(crate::config::parse_size)
                })
                .unwrap_or(128 << 20);
            let max_age = args
                .archive_max_age_s
                .map(std::time::Duration::from_secs)
                .or_else(|| {
                    archive_cfg
                        .and_then(|a| a.max_age.as_deref())
                        .and_then(crate::config::parse_duration)
                })
                .unwrap_or(std::time::Duration::from_secs(60));
            // The instance id names this writer's files and lock; with a state
            // directory it survives restarts, so a restarted instance cleans its own
            // temporary files at once.
            let instance = match &state_dir {
                Some(d) => Some(
                    crate::archive::lock::instance_id(d)
                        .map_err(|e| config_err(format!("state_dir {}: {e}", d.display())))?,
                ),
                None => None,
            };
            let w = crate::archive::ArchiveWriter::open(crate::archive::ArchiveConfig {
                root,
                partition,
                max_file_bytes,
                max_age,
                instance,
            })?;
            Some(w)
        }
        None => None,
    };
    let live_rules = Arc::new(crate::rules::live::LiveRules::new(pack.clone()));
    crate::telemetry::record_rules_loaded(pack.rules().len());
    let reload_on = match (args.no_reload, rules_cfg.reload) {
        (true, _) => false,
        (false, Some(on)) => on,
        (false, None) => mode == Mode::Run || args.inputs.iter().all(|p| p.as_os_str() == "-"),
    };
    let _reloader = if reload_on {
        match reload::start(source.clone(), live_rules.clone(), health.clone()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("rules will not be reloaded: {e}");
                None
            }
        }
    } else {
        None
    };
    crate::telemetry::component("pipeline", true, "running");
    let result = pipeline::run_live(feed, live_rules, out, archive, &cfg, shutdown.clone());
    crate::telemetry::component("pipeline", false, "stopped");
    drop(_reloader);
    // Sources stop once the pipeline is done (or failed), then apply what was
    // acknowledged.
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    let reports = live.map(|l| l.finish()).unwrap_or_default();
    let outcome = match result {
        Ok(o) => o,
        Err(pipeline::PipelineError::Sink(e)) => return Err(e.into()),
        Err(pipeline::PipelineError::Archive(e)) => return Err(e.into()),
    };
    let mut summary = outcome.summary;
    let pack = outcome.pack.clone();
    let source_failed = reports.iter().any(|r| r.error.is_some());
    summary.sources = reports;
    summary.state = outcome.state;
    if let Some(st) = &summary.state
        && st.engine.late_events > 0
    {
        tracing::warn!(
            "{} matches arrived more than the allowed lateness ({}) behind the newest event of their input and did not count in correlation windows; raise --allowed-lateness for inputs that are not in time order",
            st.engine.late_events,
            humantime::format_duration(std::time::Duration::from_micros(
                cfg.state.limits.allowed_lateness.max(0) as u64
            ))
        );
    }
    summary.inputs += missing.len() as u64;
    summary.inputs_failed += missing.len() as u64;

    match (&args.stats_file, args.stats) {
        (Some(path), _) => {
            let text = format!("{}\n", summary.to_json(&pack));
            std::fs::write(path, text).map_err(|source| AppError::StatsFile {
                path: path.clone(),
                source,
            })?;
        }
        (None, StatsFormat::Json) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{}", summary.to_json(&pack));
        }
        (None, StatsFormat::Human) => tracing::info!("{}", summary.human()),
        (None, StatsFormat::None) => {}
    }
    if summary.inputs_failed > 0 || source_failed {
        return Ok(exit::INPUT_ERROR);
    }
    if let (Some(threshold), Some(max)) = (args.fail_on, outcome.max_level)
        && max >= threshold
    {
        return Ok(exit::FINDINGS_OR_FAILURES);
    }
    Ok(exit::OK)
}

/// The findings sinks: `--kafka-brokers/--kafka-topic` (plus stdout with `--stdout`)
/// replace the config's `sinks:`; no sinks at all means stdout.
fn sink_configs(
    args: &DetectArgs,
    from_file: Vec<crate::sink::SinkConfig>,
) -> Result<Vec<crate::sink::SinkConfig>, String> {
    use crate::sink::{SinkConfig, StdoutConfig};
    let mut sinks = match (&args.kafka_brokers, &args.kafka_topic) {
        (Some(brokers), Some(topic)) => {
            if !from_file.is_empty() {
                tracing::info!("--kafka-brokers given: the config's sinks are not used");
            }
            let mut rdkafka_options = std::collections::BTreeMap::new();
            for kv in &args.kafka_option {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--kafka-option {kv:?}: expected KEY=VALUE"))?;
                rdkafka_options.insert(
                    k.trim().to_string(),
                    crate::kafka::OptionValue::Text(v.to_string()),
                );
            }
            vec![SinkConfig::Kafka(Box::new(
                crate::sink::kafka::KafkaSinkConfig {
                    name: None,
                    route: None,
                    format: None,
                    brokers: crate::kafka::Brokers::One(brokers.clone()),
                    topic: topic.clone(),
                    key: args.kafka_key.clone(),
                    compression: None,
                    delivery_timeout: None,
                    rdkafka_options,
                },
            ))]
        }
        _ => from_file,
    };
    let has_stdout = sinks.iter().any(|s| matches!(s, SinkConfig::Stdout(_)));
    if sinks.is_empty() || (args.stdout && !has_stdout) {
        sinks.push(SinkConfig::Stdout(StdoutConfig::default()));
    }
    Ok(sinks)
}

/// `trailhound config check FILE`.
pub fn config_check(file: &std::path::Path) -> Result<i32, AppError> {
    let (cfg, warnings) = ConfigFile::load(file)?;
    let mut out = io::stdout().lock();
    for w in &warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "{}: ok (rules: {}, archive: {}, dead_letter: {}, sources: {}, connections: {}; {} warnings)",
        file.display(),
        cfg.rules.is_some(),
        cfg.archive.is_some(),
        cfg.dead_letter.is_some(),
        cfg.sources.len(),
        cfg.connections.len(),
        warnings.len()
    );
    for s in &cfg.sources {
        let _ = writeln!(out, "  source {} ({})", s.name(), s.kind());
    }
    for s in &cfg.sinks {
        let _ = writeln!(out, "  sink {} ({})", s.name(), s.kind());
    }
    Ok(exit::OK)
}

/// `trailhound archive …`.
pub fn archive(cmd: &crate::cli::ArchiveCommand) -> Result<i32, AppError> {
    match cmd {
        crate::cli::ArchiveCommand::Compact { root, all } => {
            let s = crate::archive::compact(root, *all)?;
            let mut out = io::stdout().lock();
            let _ = writeln!(
                out,
                "{} partitions compacted: {} files into {}, {} rows kept, {} duplicate tp_ids dropped; {} partitions skipped while a writer had a file open in them",
                s.partitions, s.files_in, s.files_out, s.rows, s.duplicates, s.busy
            );
            Ok(exit::OK)
        }
    }
}
