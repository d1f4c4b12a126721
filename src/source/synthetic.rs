//! What the built-in synthetic source provides, field by field.
//!
//! `synthetic.mouse_v1(...)` is generated, not read, so there is no header
//! to probe: this table is its header. The checker compares every modality
//! drawn from it with the field it names (kind, dtype, the order and role of
//! the axes, their sizes, the sampling rate), and the generator in
//! `dataset::synthetic` takes its defaults from the same constants, so the
//! two cannot drift apart.

/// Video and behaviour frames per second.
pub const FRAME_RATE: u32 = 30;
/// Calcium response samples per second.
pub const RESPONSE_RATE: u32 = 8;
/// Frame height and width, pixels (one grey channel).
pub const FRAME: (usize, usize) = (36, 64);
/// Behaviour columns: running speed, pupil size, pupil x and y.
pub const BEHAVIOR_COLUMNS: usize = 4;
/// Neurons per session when `neurons:` is not given.
pub const DEFAULT_NEURONS: i64 = 32;
/// The fields, for messages.
pub const FIELDS: [&str; 4] = ["video", "behavior", "response", "spikes"];

/// What an axis of a source holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Time: samples at a rate, or, for events, the window in seconds.
    Time,
    /// Recorded units (neurons): their number is the data's.
    Units,
    /// Channels or columns (a video's colour, behaviour variables).
    Channels,
    /// Image rows or columns.
    Space,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Time => "time",
            Role::Units => "units",
            Role::Channels => "channels",
            Role::Space => "space",
        }
    }
}

/// One axis of a field.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub role: Role,
    /// Its size, when the source fixes one (the time axis has none: it is
    /// the recording's length, cut into windows).
    pub size: Option<i64>,
    /// Samples per second, for a sampled time axis.
    pub rate: Option<f64>,
    /// What it is, for messages: `the frame height`.
    pub what: &'static str,
}

/// One field of the source: the modality kind it makes, whether its values
/// are floating point, and its axes in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub kind: &'static str,
    /// The dtype the values are made in (`f32`; `f64` for spike times).
    pub dtype: &'static str,
    pub float: bool,
    pub axes: Vec<Axis>,
}

impl Field {
    /// `[time @ 30 Hz, 1 channel, 36 rows, 64 columns]`, for messages.
    pub fn describe(&self) -> String {
        let axes: Vec<String> = self
            .axes
            .iter()
            .map(|a| match (a.rate, a.size) {
                (Some(r), _) => format!("{} @ {r}Hz", a.what),
                (None, Some(n)) => format!("{} ({n})", a.what),
                (None, None) => a.what.to_string(),
            })
            .collect();
        format!("{}<{}>[{}]", self.kind, self.dtype, axes.join(", "))
    }
}

/// Field `name` of `synthetic.mouse_v1(neurons: n, height: h, width: w)`;
/// a count is `None` when its argument is not a literal.
pub fn mouse_v1_field(
    name: &str,
    neurons: Option<i64>,
    (height, width): (Option<i64>, Option<i64>),
) -> Option<Field> {
    let time = |rate: u32| Axis {
        role: Role::Time,
        size: None,
        rate: Some(f64::from(rate)),
        what: "time",
    };
    let units = Axis {
        role: Role::Units,
        size: neurons,
        rate: None,
        what: "neurons",
    };
    let field = match name {
        "video" => Field {
            kind: "video",
            dtype: "f32",
            float: true,
            axes: vec![
                time(FRAME_RATE),
                Axis {
                    role: Role::Channels,
                    size: Some(1),
                    rate: None,
                    what: "the grey channel",
                },
                Axis {
                    role: Role::Space,
                    size: height,
                    rate: None,
                    what: "rows",
                },
                Axis {
                    role: Role::Space,
                    size: width,
                    rate: None,
                    what: "columns",
                },
            ],
        },
        "behavior" => Field {
            kind: "series",
            dtype: "f32",
            float: true,
            axes: vec![
                time(FRAME_RATE),
                Axis {
                    role: Role::Channels,
                    size: Some(BEHAVIOR_COLUMNS as i64),
                    rate: None,
                    what: "behaviour columns",
                },
            ],
        },
        "response" => Field {
            kind: "series",
            dtype: "f32",
            float: true,
            axes: vec![time(RESPONSE_RATE), units],
        },
        "spikes" => Field {
            kind: "events",
            dtype: "f64",
            float: true,
            axes: vec![
                Axis {
                    role: Role::Time,
                    size: None,
                    rate: None,
                    what: "time",
                },
                units,
            ],
        },
        _ => return None,
    };
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_described() {
        for f in FIELDS {
            let field = mouse_v1_field(f, Some(8), (Some(36), Some(64)));
            assert!(field.is_some(), "{f}");
        }
        assert!(mouse_v1_field("calcium", Some(8), (None, None)).is_none());
        let video = mouse_v1_field("video", None, (Some(36), Some(64))).map(|f| f.describe());
        assert_eq!(
            video.as_deref(),
            Some("video<f32>[time @ 30Hz, the grey channel (1), rows (36), columns (64)]")
        );
    }
}
