//! Tensors in host memory: what crosses the boundary between the pure
//! parts of the runtime (the data loader, checkpoints, metrics) and a
//! backend.
//!
//! The loader fills them, the backend uploads them, and checkpoints store
//! them; none of those needs libtorch, so they are tested without it.

use std::fmt;

/// A dense, row-major `f32` tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The size of each axis, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

/// A shape and a buffer that disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    pub shape: Vec<usize>,
    pub len: usize,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a tensor of shape {:?} needs {} values, but {} were given",
            self.shape,
            self.shape.iter().product::<usize>(),
            self.len
        )
    }
}

impl std::error::Error for ShapeError {}

impl HostTensor {
    /// A tensor of `shape` holding `data`, which must have exactly as many
    /// values as the shape has elements.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<HostTensor, ShapeError> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(ShapeError {
                shape,
                len: data.len(),
            });
        }
        Ok(HostTensor { shape, data })
    }

    /// A tensor of `shape` filled with zeros.
    pub fn zeros(shape: Vec<usize>) -> HostTensor {
        let n = shape.iter().product();
        HostTensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The position of the first value that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.data.iter().position(|v| !v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_element_count() {
        assert!(HostTensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        let e = HostTensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(e.len, 5);
        assert!(e.to_string().contains("needs 6 values"));
        assert_eq!(HostTensor::new(vec![], vec![1.0]).map(|t| t.numel()), Ok(1));
    }

    #[test]
    fn first_non_finite_finds_nan_and_inf() {
        let t = HostTensor::new(vec![4], vec![1.0, 2.0, f32::INFINITY, f32::NAN]).unwrap();
        assert_eq!(t.first_non_finite(), Some(2));
        assert_eq!(HostTensor::zeros(vec![3]).first_non_finite(), None);
    }
}
