//! Hot rule reload: the rules directories are watched (inotify through `notify`) and
//! SIGHUP asks for a reload; the new set is loaded and compiled on this module's own
//! thread and handed to the pipeline through [`LiveRules`], which switches between two
//! units. A set with any error (or, with `--strict`, any warning) is rejected whole:
//! the error is logged and counted, and the rules in force stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::rules::live::LiveRules;
use crate::rules::{CompileContext, LoadOptions, LoadReport, RulePack, Selection};

/// Where a run's rules come from: what it loads at the start and again on a reload.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// Built-in pack and paths.
    pub opts: LoadOptions,
    /// Placeholders.
    pub ctx: CompileContext,
    /// Warnings count as errors.
    pub strict: bool,
    /// Which loaded rules run.
    pub selection: Selection,
}

/// A loaded, selected rule set.
#[derive(Debug)]
pub struct Loaded {
    /// The rules.
    pub pack: RulePack,
    /// What loading found.
    pub report: LoadReport,
    /// `only`/`exclude` names no rule has.
    pub unknown: Vec<String>,
}

impl RuleSource {
    /// Loads and selects the rules.
    pub fn load(&self) -> Result<Loaded, crate::rules::RulePathError> {
        let (pack, report) = RulePack::load_with(&self.opts, &self.ctx)?;
        let (pack, unknown) = pack.select(&self.selection);
        Ok(Loaded {
            pack,
            report,
            unknown,
        })
    }

    /// A reload: the new set, or why it is rejected.
    pub fn reload(&self) -> Result<Loaded, String> {
        let l = self.load().map_err(|e| e.to_string())?;
        let mut problems: Vec<String> = l.report.errors.iter().map(|e| e.to_string()).collect();
        if self.strict {
            problems.extend(l.report.warnings.iter().map(|w| w.to_string()));
        }
        problems.extend(
            l.unknown
                .iter()
                .filter(|u| self.selection.only.contains(u))
                .map(|u| format!("--rule / rules.enable names '{u}', but no rule has it")),
        );
        match problems.len() {
            0 => Ok(l),
            1 => Err(problems.remove(0)),
            n => Err(format!("{n} problems, the first: {}", problems[0])),
        }
    }

    /// The files and directories to watch.
    pub fn watched(&self) -> Vec<PathBuf> {
        self.opts.paths.clone()
    }
}

/// The reload thread; stops when dropped (at once: dropping the sender wakes it).
pub struct Reloader {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long the files must be quiet before a change is loaded (an editor's save is
/// several events; a `cp -r` of a rule pack many more).
const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching `source`'s paths and SIGHUP; reloads go to `live`.
pub fn start(
    source: RuleSource,
    live: Arc<LiveRules>,
    health: Arc<crate::telemetry::Health>,
) -> Result<Reloader, String> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| format!("SIGHUP handler: {e}"))?;
    let (tx, rx) = crossbeam_channel::unbounded::<notify::Result<notify::Event>>();
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |res| {
        let _ = tx.send(res);
    })
    .map_err(|e| format!("watching rules: {e}"))?;
    // Events name absolute paths: compare against the canonical forms.
    let paths: Vec<PathBuf> = source
        .watched()
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect();
    for p in &paths {
        // A file is watched through its directory: editors save by renaming a new file
        // over the old one, which a watch on the file itself would lose.
        let (target, mode) = if p.is_dir() {
            (p.clone(), notify::RecursiveMode::Recursive)
        } else {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (dir.to_path_buf(), notify::RecursiveMode::NonRecursive)
        };
        if let Err(e) = watcher.watch(&target, mode) {
            tracing::warn!(
                "rules at {} are not watched for changes: {e}",
                target.display()
            );
        }
    }
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::Builder::new()
        .name("rule-reload".into())
        .spawn(move || {
            let _watcher = watcher;
            let mut dirty: Option<Instant> = None;
            let mut reason = String::new();
            loop {
                // SIGHUP is a flag: looked at every 100 ms.
                let got = crossbeam_channel::select! {
                    recv(rx) -> ev => ev.ok(),
                    recv(stopped) -> _ => break,
                    default(Duration::from_millis(100)) => None,
                };
                match got {
                    Some(Ok(ev)) => {
                        tracing::trace!(?ev, "rule watch event");
                        // Reading the rules (ours included) is not a change.
                        let change = !matches!(ev.kind, notify::EventKind::Access(_));
                        if let Some(p) = ev.paths.iter().find(|p| change && relevant(p, &paths)) {
                            reason = format!("{} changed", p.display());
                            dirty = Some(Instant::now());
                        }
                    }
                    Some(Err(e)) => tracing::warn!("rule watch: {e}"),
                    None => {}
                }
                if hup.swap(false, Ordering::Relaxed) {
                    reload(&source, &live, &health, "SIGHUP");
                    dirty = None;
                }
                if dirty.is_some_and(|t| t.elapsed() >= SETTLE) {
                    dirty = None;
                    reload(&source, &live, &health, &reason);
                }
            }
        })
        .map_err(|e| format!("reload thread: {e}"))?;
    Ok(Reloader {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Whether a changed path can affect the rules: a YAML file under a watched
/// directory, or a watched file itself.
fn relevant(p: &Path, watched: &[PathBuf]) -> bool {
    let yaml = p
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
    watched.iter().any(|w| {
        if w.is_dir() {
            yaml && p.starts_with(w)
        } else {
            p == w || p.file_name() == w.file_name()
        }
    })
}

fn reload(source: &RuleSource, live: &LiveRules, health: &crate::telemetry::Health, why: &str) {
    let started = Instant::now();
    let before = live.snapshot_pack();
    match source.reload() {
        Ok(l) => {
            let (added, removed) = diff(&before, &l.pack);
            let n = l.pack.rules().len();
            for w in &l.report.warnings {
                tracing::warn!("{w}");
            }
            let generation = live.replace(Arc::new(l.pack));
            crate::telemetry::record_reload(true, n);
            health.set(
                "rules",
                true,
                format!("{n} rules loaded (reload {generation})"),
            );
            tracing::info!(
                rules = n,
                added,
                removed,
                generation,
                took_ms = started.elapsed().as_millis() as u64,
                "rules reloaded ({why}): {n} rules, {added} added, {removed} removed"
            );
        }
        Err(e) => {
            crate::telemetry::record_reload(false, before.rules().len());
            health.set(
                "rules",
                true,
                format!(
                    "{} rules loaded; the last reload was rejected: {e}",
                    before.rules().len()
                ),
            );
            tracing::error!(
                "rule reload rejected ({why}): {e}; the {} rules in force stay active",
                before.rules().len()
            );
        }
    }
}

fn diff(old: &RulePack, new: &RulePack) -> (usize, usize) {
    let has = |p: &RulePack, id: &str| p.rules().iter().any(|r| r.meta.id == id);
    let added = new.rules().iter().filter(|r| !has(old, &r.meta.id)).count();
    let removed = old.rules().iter().filter(|r| !has(new, &r.meta.id)).count();
    (added, removed)
}
