//! The one `.npy` writer of the integration tests: little-endian `f4`,
//! version 1.0, as NumPy's `np.save` writes it, in C order or (for a
//! matrix) Fortran order.

use std::path::Path;

/// Writes `values` (row-major) as a `[shape]` float32 `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) {
    write(path, shape, values, false)
}

/// Writes the matrix `values` (row-major, `[rows, cols]`) as a
/// Fortran-order `.npy` file: column after column on disk.
#[allow(dead_code)] // Only some test crates write Fortran order.
pub fn write_f32_fortran(path: &Path, shape: [usize; 2], values: &[f32]) {
    let [rows, cols] = shape;
    let columns: Vec<f32> = (0..rows * cols)
        .map(|k| values[(k % rows) * cols + k / rows])
        .collect();
    write(path, &shape, &columns, true)
}

fn write(path: &Path, shape: &[usize], values: &[f32], fortran: bool) {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "{path:?}");
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': {order}, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    while (11 + header.len()) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, out).unwrap();
}
