//! The ground truth behind synthetic inputs, laid out as the model sees
//! its data.
//!
//! A modality drawn straight from a simulated `response` has a noise-free
//! counterpart: the calcium before measurement noise
//! (`Truth::calcium`). [`Dataset::clean_batch`] passes it through the
//! modality's fitted transforms (fitted on the noisy training data, as the
//! model's input was) and cuts the same windows, so a model's predictions
//! can be compared with what the data would be without noise. Any other
//! input has no truth, and gets `None`.

use super::batch::permuted;
use super::sources::Stream;
use super::{Dataset, Error, ErrorKind};
use crate::base::host::HostTensor;
use crate::dataset::synthetic::MouseV1;
use crate::ir::data::Split;
use crate::ir::data::{ModalitySpec, Origin};

/// What the simulation knows about each neuron's behavioural gain, and
/// the running speed it was driven by, on the response's time grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Running {
    /// Mean running speed (cm/s) over each response sample of each
    /// window, `[B, T]` row-major.
    pub speed: Vec<f64>,
    /// Each neuron's true running gain (`beta_run`).
    pub gains: Vec<f64>,
}

impl Dataset {
    /// The modality of input `input` and its simulation, when the input is
    /// drawn straight from a simulation's `response`. A `select` would need
    /// the truth cut the same way; the simulated response is never
    /// selected in the examples, so such an input has no truth here.
    fn simulated_response(&self, input: usize) -> Option<(usize, &ModalitySpec, &MouseV1)> {
        let &m = self.spec.inputs.get(input)?;
        let spec = self.spec.modalities.get(m)?;
        let Origin::Source { source, field } = &spec.origin else {
            return None;
        };
        if field.as_slice() != ["response"] || !spec.select.is_empty() {
            return None;
        }
        Some((m, spec, self.simulation(*source)?))
    }

    /// For input `input` drawn straight from a simulation's `response`,
    /// windows `ids` of `split` (of one session): the running speed
    /// averaged over each response sample, and the neurons' true running
    /// gains; `None` for any other input.
    pub fn running(&self, input: usize, split: Split, ids: &[usize]) -> Option<Running> {
        let (_, _, sim) = self.simulated_response(input)?;
        let windows: Vec<_> = ids
            .iter()
            .map(|&id| self.window(split, id))
            .collect::<Option<_>>()?;
        let s = windows.first()?.session;
        let session = sim.session(s)?;
        let (fr, rr) = (
            f64::from(sim.config().frame_rate),
            f64::from(sim.config().response_rate),
        );
        let behavior = session.behavior();
        let frames = behavior.len() / 4;
        if frames == 0 {
            return None;
        }
        let t = (self.settings.length * rr).round() as usize;
        let mut speed = Vec::with_capacity(windows.len() * t);
        for w in &windows {
            for j in 0..t {
                // The frames whose start lies in the sample's interval.
                let a = ((w.start + j as f64 / rr) * fr).ceil() as usize;
                let b =
                    (((w.start + (j + 1) as f64 / rr) * fr).ceil() as usize).clamp(a + 1, frames);
                let vals: Vec<f64> = (a.min(frames - 1)..b)
                    .map(|f| f64::from(behavior[f * 4]))
                    .collect();
                speed.push(vals.iter().sum::<f64>() / vals.len().max(1) as f64);
            }
        }
        let gains = session.truth().neurons.iter().map(|n| n.run_gain).collect();
        Some(Running { speed, gains })
    }

    /// For input `input` of the IR and windows `ids` of `split` (of one
    /// session), the noise-free values in the batch's layout; `None` when
    /// the input is not drawn straight from a simulation's `response`.
    pub fn clean_batch(
        &self,
        input: usize,
        split: Split,
        ids: &[usize],
    ) -> Result<Option<HostTensor>, Error> {
        let Some((m, spec, sim)) = self.simulated_response(input) else {
            return Ok(None);
        };
        let windows: Vec<_> = ids
            .iter()
            .map(|&id| {
                self.window(split, id).ok_or_else(|| {
                    Error::new(ErrorKind::Window, "no such window").window(split, id)
                })
            })
            .collect::<Result<_, _>>()?;
        let Some(s) = windows.first().map(|w| w.session) else {
            return Ok(None);
        };
        if windows.iter().any(|w| w.session != s) {
            return Err(Error::new(
                ErrorKind::Window,
                "a batch holds windows of one session",
            ));
        }
        let (
            Some(session),
            Some(Some(Stream::Series { rate, chan, .. })),
            Some(pipeline),
            Some(info),
        ) = (
            sim.session(s),
            self.streams.get(m).and_then(|v| v.get(s)),
            self.pipelines.get(m).and_then(|p| p.get(s)),
            self.sessions.get(s),
        )
        else {
            return Ok(None);
        };
        let raw = Stream::Series {
            rate: f64::from(sim.config().response_rate),
            chan: chan.clone(),
            data: session.truth().calcium.clone(),
        };
        let clean = super::fit::transform(raw, pipeline, info.duration)
            .map_err(|e| e.modality(&spec.name).session(s))?;
        let Stream::Series { data, .. } = &clean else {
            return Ok(None);
        };
        let layout = self.series(spec, *rate, chan, data, &windows)?;
        let (shape, values) = permuted(layout.0, layout.1)?;
        HostTensor::new(shape, values)
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::DataShape, e.to_string()))
    }
}
