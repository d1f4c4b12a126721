//! Opening a dataset: read, window, fit, transform, check.
//!
//! The order matters and is the one `docs/data.md` describes: sources are
//! read first (their lengths fix each session's duration), then windows
//! are cut and split (the training windows fix what `zscore` may see),
//! then each modality's transforms are fitted on its training windows and
//! applied to whole sessions, sources before the modalities derived from
//! them, and last the results are checked against the declared shapes and
//! rates.

use std::collections::BTreeMap;

use super::fit::{fit, transform};
use super::sources::{self, Masks, Raw, Reader, Stream};
use super::{Dataset, Error, ErrorKind, SessionInfo};
use crate::dataset::transform::Pipeline;
use crate::dataset::windows::{self, Splits, Window, WindowSpec};
use crate::ir::data::{DataSpec, ModalitySpec, Origin, WindowSettings};
use crate::ir::ModalityKind;

impl Dataset {
    /// Reads every source of `spec` and prepares its windows; see the
    /// module documentation for the steps and `docs/data.md` for the rules.
    pub fn open(spec: &DataSpec) -> Result<Dataset, Error> {
        let order = order(spec)?;
        let n = spec.modalities.len();
        let mut reader = Reader::new(spec);
        let mut masks = vec![Masks::default(); n];
        let mut raws: Vec<Option<Vec<Raw>>> = vec![None; n];
        for &i in &order {
            let m = &spec.modalities[i];
            masks[i] = reader.masks(m).map_err(|e| e.modality(&m.name))?;
            if matches!(m.origin, Origin::Source { .. }) {
                let read = reader.read(m, &masks[i]).map_err(|e| e.modality(&m.name))?;
                // Shapes first: a file in the wrong layout also has the
                // wrong length, and its shape is the clearer message.
                for (s, raw) in read.iter().enumerate() {
                    check_channels(m, &raw.stream)
                        .and_then(|()| check_rate(m, &raw.stream))
                        .map_err(|e| {
                            let e = e.modality(&m.name).session(s);
                            match file_of(spec, &mut reader, i, s) {
                                Some(f) => e.file(&f),
                                None => e,
                            }
                        })?;
                }
                raws[i] = Some(read);
            }
        }
        let (source_name, settings) = settings(spec, &order)?;
        let session_count = sessions(spec, &raws)?;
        let durations = (0..session_count)
            .map(|s| duration(&raws, s))
            .collect::<Vec<_>>();
        let grid = grid(spec, &order)?;
        let window_spec = WindowSpec {
            length: settings.length,
            stride: settings.stride,
            grid,
            rule: settings.rule,
        };
        let mut splits = windows::windows(&durations, &window_spec)
            .map_err(|e| Error::new(ErrorKind::Window, e.to_string()).data(&source_name))?;
        if let Some(name) = &settings.within {
            within(spec, &raws, name, &settings, &mut splits).map_err(|e| e.data(&source_name))?;
        }
        let mut streams: Vec<Vec<Option<Stream>>> = vec![vec![None; session_count]; n];
        let mut pipelines: Vec<Vec<Pipeline>> = vec![Vec::new(); n];
        for &i in &order {
            let m = &spec.modalities[i];
            let raw: Vec<Stream> = match (&m.origin, raws[i].take()) {
                (Origin::Source { .. }, Some(r)) => r.into_iter().map(|r| r.stream).collect(),
                (Origin::Modality(j), _) => {
                    let mut out = Vec::with_capacity(session_count);
                    for (s, slot) in streams[*j].iter().enumerate() {
                        let Some(mut stream) = slot.clone() else {
                            return Err(
                                Error::spec("its source modality was not read").modality(&m.name)
                            );
                        };
                        masks[i]
                            .session(s)
                            .and_then(|keep| sources::select(&mut stream, m, &keep))
                            .map_err(|e| e.modality(&m.name).session(s))?;
                        out.push(stream);
                    }
                    out
                }
                _ => return Err(Error::spec("not read").modality(&m.name)),
            };
            let fitted = fit(m, &raw, &splits, &settings, reader.synthetic())
                .map_err(|e| e.modality(&m.name))?;
            for (s, (stream, pipeline)) in raw.into_iter().zip(&fitted).enumerate() {
                let out = transform(stream, pipeline, durations[s])
                    .map_err(|e| e.modality(&m.name).session(s))?;
                streams[i][s] = Some(out);
            }
            pipelines[i] = fitted;
        }
        let mut infos = Vec::with_capacity(session_count);
        for (s, &duration) in durations.iter().enumerate() {
            let mut dims = BTreeMap::new();
            for &i in &order {
                let m = &spec.modalities[i];
                let Some(stream) = &streams[i][s] else {
                    continue;
                };
                if let Err(e) = check(m, stream, &settings, &mut dims) {
                    let e = e.modality(&m.name).session(s);
                    return Err(match file_of(spec, &mut reader, i, s) {
                        Some(f) => e.file(&f),
                        None => e,
                    });
                }
            }
            infos.push(SessionInfo { duration, dims });
        }
        shared_dims(spec, &infos)?;
        Ok(Dataset {
            spec: spec.clone(),
            settings,
            splits,
            sessions: infos,
            streams,
            pipelines,
            synthetic: reader.into_synthetic(),
        })
    }
}

/// The modalities in use (inputs, what they derive from, the `within`
/// intervals), each after the one it derives from.
fn order(spec: &DataSpec) -> Result<Vec<usize>, Error> {
    let n = spec.modalities.len();
    let mut wanted: Vec<usize> = spec.inputs.clone();
    for src in &spec.sources {
        if let Some(w) = src.window.as_ref().and_then(|w| w.within.as_ref()) {
            match spec.modality_index(w) {
                Some(i) => wanted.push(i),
                None => {
                    return Err(
                        Error::spec(format!("`within: {w}` names no modality")).data(&src.name)
                    )
                }
            }
        }
    }
    // The spec is plain data: check its indices before using them.
    for (i, m) in spec.modalities.iter().enumerate() {
        if let Origin::Modality(j) = m.origin {
            if j >= n {
                return Err(Error::spec(format!(
                    "modality {i} derives from modality {j}, which does not exist"
                )));
            }
        }
    }
    if let Some(&bad) = wanted.iter().find(|&&i| i >= n) {
        return Err(Error::spec(format!("input {bad} names no modality")));
    }
    // A depth-first walk; `state` 1 is on the path, 2 is placed.
    let mut state = vec![0u8; n];
    let mut out = Vec::new();
    for start in wanted {
        let mut path = vec![start];
        while let Some(&i) = path.last() {
            let m = spec
                .modalities
                .get(i)
                .ok_or_else(|| Error::spec(format!("no modality {i}")))?;
            match (state[i], &m.origin) {
                (2, _) => {
                    path.pop();
                }
                (1, Origin::Modality(j)) if state[*j] != 2 => {
                    return Err(Error::spec(format!(
                        "`{}` derives from itself through `from`",
                        m.name
                    )))
                }
                (0, Origin::Modality(j)) if state[*j] != 2 => {
                    state[i] = 1;
                    path.push(*j);
                }
                _ => {
                    state[i] = 2;
                    out.push(i);
                    path.pop();
                }
            }
        }
    }
    Ok(out)
}

/// The file session `s` of modality `i` reads, following derivations.
fn file_of(spec: &DataSpec, reader: &mut Reader, i: usize, s: usize) -> Option<std::path::PathBuf> {
    let mut at = i;
    for _ in 0..=spec.modalities.len() {
        match &spec.modalities.get(at)?.origin {
            Origin::Source { source, field } => return reader.session_file(*source, field, s),
            Origin::Modality(j) => at = *j,
        }
    }
    None
}

/// The one set of window settings every windowed source in use shares,
/// with the name of the first item that gives it.
fn settings(spec: &DataSpec, order: &[usize]) -> Result<(String, WindowSettings), Error> {
    let mut found: Option<(&str, &WindowSettings)> = None;
    for &i in order {
        let m = &spec.modalities[i];
        let Origin::Source { source, .. } = m.origin else {
            continue;
        };
        let Some(src) = spec.sources.get(source) else {
            continue;
        };
        // An intervals table is not cut into windows, so it may come
        // from an item without one.
        if m.kind == ModalityKind::Intervals && src.window.is_none() {
            continue;
        }
        let Some(w) = &src.window else {
            return Err(Error::spec(format!(
                "it draws from `{}`, which has no `window:`; give the data item a window (and a split) to cut examples from it",
                src.name
            ))
            .modality(&m.name));
        };
        match found {
            Some((other, first)) if first != w => {
                return Err(Error::spec(format!(
                    "`{other}` and `{}` feed one model but cut windows differently ({} s every {} s against {} s every {} s, or another split or `within`); give them the same settings so their windows line up",
                    src.name, first.length, first.stride, w.length, w.stride
                )))
            }
            Some(_) => {}
            None => found = Some((&src.name, w)),
        }
    }
    found
        .map(|(name, w)| (name.to_string(), w.clone()))
        .ok_or_else(|| Error::spec("the model reads no windowed data"))
}

/// The number of sessions, which every source in use must agree on.
fn sessions(spec: &DataSpec, raws: &[Option<Vec<Raw>>]) -> Result<usize, Error> {
    let mut count: Option<(usize, &str)> = None;
    for (i, r) in raws.iter().enumerate() {
        let Some(r) = r else { continue };
        let name = &spec.modalities[i].name;
        match count {
            Some((c, other)) if c != r.len() => {
                return Err(Error::spec(format!(
                    "`{other}` has {c} sessions but `{name}` has {}; the sources of one model must have the same sessions",
                    r.len()
                )))
            }
            Some(_) => {}
            None => count = Some((r.len(), name)),
        }
    }
    match count {
        Some((c, _)) if c > 0 => Ok(c),
        _ => Err(Error::new(ErrorKind::Window, "the sources hold no session")),
    }
}

/// A session's duration: the shortest recording length among its sources,
/// or, when none records one (an NWB file's spikes and intervals), the
/// last time anything happens.
fn duration(raws: &[Option<Vec<Raw>>], s: usize) -> f64 {
    let of_session = || raws.iter().flatten().filter_map(move |r| r.get(s));
    let lengths = of_session().filter_map(|r| r.length);
    match lengths.clone().next() {
        Some(_) => lengths.fold(f64::INFINITY, f64::min),
        None => of_session()
            .map(|r| r.stream.last_time())
            .fold(0.0, f64::max),
    }
}

/// The window grid: the shortest duration in which every rate in use has
/// a whole number of samples (half a second for 30 Hz and 8 Hz).
fn grid(spec: &DataSpec, order: &[usize]) -> Result<f64, Error> {
    let rates: Vec<f64> = order
        .iter()
        .filter_map(|&i| spec.modalities[i].rate)
        .collect();
    let Some(grid) = grid_of(&rates) else {
        return Err(Error::spec(format!(
            "the rates {rates:?} Hz have no common sample grid (each must be a fraction with a denominator up to 1000)"
        )));
    };
    Ok(grid)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `1 / gcd(rates)` for rates that are fractions `p / q` with `q <= 1000`;
/// events alone (no rate) give a grid of a millisecond.
pub(super) fn grid_of(rates: &[f64]) -> Option<f64> {
    let mut fractions = Vec::new();
    for &r in rates {
        let q = (1..=1000u64).find(|&q| {
            let p = r * q as f64;
            (p - p.round()).abs() < 1e-6
        })?;
        let p = (r * q as f64).round() as u64;
        let g = gcd(p, q);
        fractions.push((p / g, q / g));
    }
    if fractions.is_empty() {
        return Some(0.001);
    }
    let lcm = fractions
        .iter()
        .try_fold(1u64, |l, &(_, q)| l.checked_mul(q / gcd(l, q)))?;
    let common = fractions
        .iter()
        .fold(0u64, |g, &(p, q)| gcd(g, p * (lcm / q)));
    (common > 0).then(|| lcm as f64 / common as f64)
}

/// Keeps the windows that lie inside one interval of modality `name`.
fn within(
    spec: &DataSpec,
    raws: &[Option<Vec<Raw>>],
    name: &str,
    settings: &WindowSettings,
    splits: &mut Splits,
) -> Result<(), Error> {
    let i = spec
        .modality_index(name)
        .ok_or_else(|| Error::spec(format!("`within: {name}` names no modality")))?;
    let Some(raws) = &raws[i] else {
        return Err(Error::spec(format!(
            "`within: {name}` must name an intervals modality read from a data item"
        )));
    };
    let rows: Vec<&[(f64, f64)]> = raws
        .iter()
        .map(|r| match &r.stream {
            Stream::Intervals { rows, .. } => Ok(rows.as_slice()),
            _ => Err(Error::spec(format!(
                "`within: {name}` must name an intervals modality"
            ))),
        })
        .collect::<Result<_, _>>()?;
    let inside = |w: &Window| {
        rows.get(w.session).is_some_and(|rows| {
            rows.iter()
                .any(|&(a, b)| w.start >= a - 1e-9 && w.start + settings.length <= b + 1e-9)
        })
    };
    splits.train.retain(inside);
    splits.val.retain(inside);
    splits.test.retain(inside);
    if splits.train.is_empty() {
        return Err(Error::new(
            ErrorKind::Window,
            format!("no training window lies inside the intervals of `{name}`"),
        ));
    }
    Ok(())
}

/// Checks a session's transformed stream against modality `m`'s declared
/// kind, rate and dims, binding the dims only data sizes in `dims`.
fn check(
    m: &ModalitySpec,
    stream: &Stream,
    settings: &WindowSettings,
    dims: &mut BTreeMap<String, usize>,
) -> Result<(), Error> {
    let kind_ok = matches!(
        (m.kind, stream),
        (
            ModalityKind::Video | ModalityKind::Series,
            Stream::Series { .. } | Stream::Video { .. } | Stream::Lazy(_)
        ) | (ModalityKind::Events, Stream::Events { .. })
            | (ModalityKind::Intervals, Stream::Intervals { .. })
    );
    if !kind_ok {
        let have = match stream {
            Stream::Series { .. } | Stream::Video { .. } | Stream::Lazy(_) => "sampled values",
            Stream::Events { .. } => "events (`bin` them to make a series)",
            Stream::Intervals { .. } => "intervals",
        };
        return Err(Error::new(
            ErrorKind::DataShape,
            format!("is declared `{:?}` but its source gives {have}", m.kind).to_lowercase(),
        ));
    }
    let rate = match stream {
        Stream::Series { rate, .. } => Some(*rate),
        Stream::Lazy(l) => Some(l.rate),
        _ => None,
    };
    if let (Some(rate), Some(declared)) = (rate, m.rate) {
        if (rate - declared).abs() > 1e-6 * declared {
            return Err(Error::new(
                ErrorKind::DataShape,
                format!(
                    "is declared at {declared} Hz, but its values arrive at {rate} Hz after its transforms; add `| resample({declared}Hz)`"
                ),
            ));
        }
    }
    for d in m.dims.iter().filter(|d| d.time) {
        if let (Some(size), Some(rate)) = (d.size, d.rate) {
            let samples = (settings.length * rate).round() as usize;
            if samples != size {
                return Err(Error::new(
                    ErrorKind::DataShape,
                    format!(
                        "declares `{}` as {size} samples at {rate} Hz, but the data item's window of {} s holds {samples}",
                        d.name, settings.length
                    ),
                ));
            }
        }
    }
    let chans = stream.chan();
    check_channels(m, stream)?;
    for (d, c) in m.channel_dims().zip(chans) {
        match dims.get(&d.name) {
            Some(&bound) if bound != c.size => {
                return Err(Error::new(
                    ErrorKind::DataShape,
                    format!(
                        "`{}` is {bound} in another modality of this session, but {} has {}",
                        d.name, c.what, c.size
                    ),
                ))
            }
            // Anonymous dims (`36`) are sizes, not names to bind.
            _ if d
                .name
                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') =>
            {
                dims.insert(d.name.clone(), c.size);
            }
            _ => {}
        }
    }
    super::sources::check_finite(
        stream,
        " after its transforms (the source values are finite); check the transforms' domain, such as `log` of values at or below zero",
    )
}

/// The rate modality `m`'s transforms make from its source's rate, against
/// the declared rate.
fn check_rate(m: &ModalitySpec, raw: &Stream) -> Result<(), Error> {
    let input = match raw {
        Stream::Series { rate, .. } | Stream::Video { rate, .. } => Some(*rate),
        Stream::Lazy(l) => Some(l.rate),
        _ => None,
    };
    match (super::fit::output_rate(input, &m.transforms), m.rate) {
        (Some(made), Some(declared)) if (made - declared).abs() > 1e-6 * declared => {
            Err(Error::new(
                ErrorKind::DataShape,
                format!(
                    "is declared at {declared} Hz, but its values arrive at {made} Hz after its transforms; add `| resample({declared}Hz)`"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The data's channel axes against the declared dims besides time: as
/// many, and of the declared sizes where the checker knew them.
fn check_channels(m: &ModalitySpec, stream: &Stream) -> Result<(), Error> {
    let chans = stream.chan();
    let declared: Vec<_> = m.channel_dims().collect();
    if declared.len() != chans.len() {
        return Err(sources::shape_mismatch_count(m, chans));
    }
    for (d, c) in declared.iter().zip(chans) {
        match d.size {
            Some(size) if size != c.size => {
                let samples = raw_samples(stream);
                let hint = if chans.iter().any(|o| o.size == size) || samples == Some(size) {
                    "; the data has an axis of that size elsewhere, so its axes may be in another order than the declaration says (`axes:` names a file's axes in the file's order)"
                } else {
                    ""
                };
                return Err(Error::new(
                    ErrorKind::DataShape,
                    format!(
                        "{} has {} positions, but the modality declares `{}` as {size}{hint}",
                        c.what, c.size, d.name
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The number of samples of a stored series.
fn raw_samples(stream: &Stream) -> Option<usize> {
    match stream {
        Stream::Series { chan, data, .. } => {
            let width: usize = chan.iter().map(|c| c.size).product();
            data.len().checked_div(width)
        }
        Stream::Lazy(l) => Some(l.samples()),
        _ => None,
    }
}

/// Dims not declared `per session` must have one size in every session.
fn shared_dims(spec: &DataSpec, infos: &[SessionInfo]) -> Result<(), Error> {
    for m in &spec.modalities {
        for d in m.dims.iter().filter(|d| !d.per_session && !d.time) {
            let mut sizes = infos
                .iter()
                .enumerate()
                .filter_map(|(s, i)| i.dims.get(&d.name).map(|&v| (s, v)));
            if let Some((_, first)) = sizes.next() {
                if let Some((s, other)) = sizes.find(|&(_, v)| v != first) {
                    return Err(Error::new(
                        ErrorKind::DataShape,
                        format!(
                            "`{}` is {first} in session 0 but {other} in session {s}; declare it `dim {} per session` if it varies",
                            d.name, d.name
                        ),
                    )
                    .modality(&m.name));
                }
            }
        }
    }
    Ok(())
}
