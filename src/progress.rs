//! A pull's or push's layers on the terminal, in docker's words: one line a
//! layer redrawn as it moves (`ID: Downloading [==>   ]  12.3MB/45.6MB`,
//! indicatif's bars) when stdout is a terminal, plain lines at the end when
//! it is not, the name alone with `-q`.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use wrun_image::digest::Digest;
use wrun_image::registry::{ProgressSink, TransferEvent};

use crate::output::human_size_with_precision;

/// Which transfer, for its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

impl Direction {
    fn pending(self) -> &'static str {
        match self {
            Direction::Pull => "Pulling fs layer",
            Direction::Push => "Preparing",
        }
    }

    fn moving(self) -> &'static str {
        match self {
            Direction::Pull => "Downloading",
            Direction::Push => "Pushing",
        }
    }

    fn moved(self) -> &'static str {
        match self {
            Direction::Pull => "Download complete",
            Direction::Push => "Pushed",
        }
    }

    /// The last word of a layer: moved (true) or there already (false).
    pub fn last(self, moved: bool) -> &'static str {
        match (self, moved) {
            (Direction::Pull, true) => "Pull complete",
            (Direction::Pull, false) => "Already exists",
            (Direction::Push, true) => "Pushed",
            (Direction::Push, false) => "Layer already exists",
        }
    }
}

/// How a transfer's layers are shown.
pub struct LayerProgress {
    direction: Direction,
    bars: Option<Arc<Bars>>,
}

/// A terminal's bars: one a layer, the header printed with the first.
struct Bars {
    multi: MultiProgress,
    header: Option<String>,
    layers: Mutex<HashMap<Digest, ProgressBar>>,
}

impl LayerProgress {
    /// Bars when stdout is a terminal and not `quiet`; otherwise nothing
    /// is drawn (the caller prints plain lines, or the name alone).
    /// `header` is printed once the transfer knows its layers (a pull's
    /// `TAG: Pulling from PATH`, after the manifest is found).
    pub fn new(direction: Direction, quiet: bool, header: Option<String>) -> LayerProgress {
        let bars = (!quiet && std::io::stdout().is_terminal()).then(|| {
            Arc::new(Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                header,
                layers: Mutex::new(HashMap::new()),
            })
        });
        LayerProgress { direction, bars }
    }

    /// Whether bars are drawn (else the caller prints the layers' lines).
    pub fn drawn(&self) -> bool {
        self.bars.is_some()
    }

    /// Where the transfer sends its events.
    pub fn sink(&self) -> ProgressSink {
        match &self.bars {
            None => ProgressSink::default(),
            Some(bars) => {
                let bars = Arc::clone(bars);
                let direction = self.direction;
                ProgressSink::new(move |event| bars.show(direction, event))
            }
        }
    }

    /// After a transfer that succeeded: each layer's last word (`layers`
    /// in the manifest's order, and whether each moved), drawn over its
    /// bar or, when nothing was drawn, printed as a line (a push's top
    /// layer first, as docker lists them).
    pub fn finish(&self, layers: &[(Digest, bool)]) {
        let words: Vec<(Digest, String)> = layers
            .iter()
            .map(|(d, moved)| (*d, self.direction.last(*moved).to_owned()))
            .collect();
        self.finish_with(&words);
    }

    /// [`LayerProgress::finish`] with each layer's last word given (a
    /// push's `Mounted from REPO`).
    pub fn finish_with(&self, layers: &[(Digest, String)]) {
        match &self.bars {
            Some(bars) => {
                let drawn = bars.layers.lock().unwrap_or_else(|p| p.into_inner());
                // An image without layers drew nothing, not even its header.
                if drawn.is_empty()
                    && let Some(header) = &bars.header
                {
                    println!("{header}");
                }
                for (layer, word) in layers {
                    if let Some(bar) = drawn.get(layer) {
                        bar.set_style(waiting_style());
                        bar.finish_with_message(word.clone());
                    }
                }
            }
            None => {
                let mut lines: Vec<_> = layers.iter().collect();
                if self.direction == Direction::Push {
                    lines.reverse();
                }
                for (layer, word) in lines {
                    println!("{}: {word}", layer.short());
                }
            }
        }
    }
}

impl Bars {
    fn show(&self, direction: Direction, event: TransferEvent) {
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            TransferEvent::Pending { layer, size, .. } => {
                if layers.is_empty()
                    && let Some(header) = &self.header
                {
                    let _ = self.multi.println(header);
                }
                let bar = ProgressBar::new(size)
                    .with_style(waiting_style())
                    .with_prefix(layer.short())
                    .with_message(direction.pending());
                // docker lists a push's layers top first.
                let bar = match direction {
                    Direction::Pull => self.multi.add(bar),
                    Direction::Push => self.multi.insert(0, bar),
                };
                layers.insert(layer, bar);
            }
            TransferEvent::Exists { layer } => {
                if let Some(bar) = layers.get(&layer) {
                    bar.finish_with_message(direction.last(false));
                }
            }
            TransferEvent::Mounted { layer, from } => {
                if let Some(bar) = layers.get(&layer) {
                    bar.finish_with_message(format!("Mounted from {from}"));
                }
            }
            TransferEvent::Bytes { layer, done, size } => {
                if let Some(bar) = layers.get(&layer) {
                    if bar.message() != direction.moving() {
                        bar.set_style(moving_style());
                        bar.set_message(direction.moving());
                        // Redrawn now and then even when no byte moves (a
                        // draw skipped by the rate limit is not made later).
                        bar.enable_steady_tick(Duration::from_millis(200));
                    }
                    bar.set_length(size);
                    bar.set_position(done);
                }
            }
            TransferEvent::Done { layer } => {
                if let Some(bar) = layers.get(&layer) {
                    bar.set_style(waiting_style());
                    bar.set_message(direction.moved());
                }
            }
            TransferEvent::Storing => {
                for bar in layers.values().filter(|b| !b.is_finished()) {
                    bar.set_style(waiting_style());
                    bar.set_message("Extracting");
                }
            }
        }
    }
}

/// A layer's line without a bar: `ID: Pulling fs layer`.
fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template")
}

/// A moving layer's line, as docker draws it: `ID: Downloading
/// [=====>      ]  12.35MB/45.6MB` (a 50-wide box, decimal sizes).
fn moving_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg} [{bar:51}] {docker_bytes}")
        .expect("a valid template")
        .progress_chars("=> ")
        .with_key(
            "docker_bytes",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let total = state.len().unwrap_or(0);
                let _ = write!(
                    out,
                    "{:>8}/{}",
                    human_size_with_precision(state.pos(), 4),
                    human_size_with_precision(total, 4)
                );
            },
        )
}
