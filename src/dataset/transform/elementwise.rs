//! The interpreter of elementwise transform programs: an expression in
//! `x`, compiled by the checker into a stack program
//! ([`crate::ir::transform::Program`]), run over every element of a signal.
//!
//! `(x - 0.5) / 0.25` and `log1p(max(x, 0))` are the typical stages. This
//! interpreter is the reference semantics: each instruction means what the
//! IR defines ([`Fn1::apply`], [`BinOp::apply`]), and a compiled backend
//! must give the same bits.

use crate::ir::transform::{flag, truth, BinOp, Fn1, Ins, Program};

/// An elementwise expression, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Elementwise {
    program: Program,
}

impl Elementwise {
    pub fn new(program: Program) -> Elementwise {
        Elementwise { program }
    }

    /// Applies the expression to every element, in place.
    pub fn apply(&self, data: &mut [f32]) {
        // A constant expression fills; `x` alone is the identity.
        match self.program.code() {
            [Ins::X] => return,
            [Ins::Const(c)] => {
                data.fill(*c);
                return;
            }
            _ => {}
        }
        // Blocks of elements through the program, one instruction at a time
        // over the whole block: the dispatch is paid per block, and each
        // instruction's loop is plain arithmetic the compiler vectorises.
        // Every element sees the same f32 operations in the same order as
        // in `run`, so the results are the same bits (tested).
        let mut regs = vec![[0.0f32; BLOCK]; self.program.depth()];
        for chunk in data.chunks_mut(BLOCK) {
            let n = chunk.len();
            let mut sp = 0;
            for ins in self.program.code() {
                block(*ins, &mut regs, &mut sp, chunk, n);
            }
            chunk.copy_from_slice(&regs[0][..n]);
        }
    }

    /// The value at one element (for tests and constant folding).
    pub fn eval(&self, x: f32) -> f32 {
        let mut stack = Vec::with_capacity(self.program.depth());
        run(self.program.code(), x, &mut stack)
    }
}

/// Elements per block of [`Elementwise::apply`]: 1 KiB per register.
const BLOCK: usize = 256;

/// Runs one instruction over the first `n` elements of the registers;
/// `sp` is the number of registers in use. `compile` checked that the
/// program never pops an empty stack and that `regs` holds its depth.
fn block(ins: Ins, regs: &mut [[f32; BLOCK]], sp: &mut usize, x: &[f32], n: usize) {
    let top = *sp;
    match ins {
        Ins::Const(c) => regs[top][..n].fill(c),
        Ins::X => regs[top][..n].copy_from_slice(x),
        Ins::Neg => map1(&mut regs[top - 1][..n], |v| -v),
        Ins::Not => map1(&mut regs[top - 1][..n], |v| flag(!truth(v))),
        Ins::Fn1(f) => match f {
            Fn1::Exp => map1(&mut regs[top - 1][..n], f32::exp),
            Fn1::Log => map1(&mut regs[top - 1][..n], f32::ln),
            Fn1::Abs => map1(&mut regs[top - 1][..n], f32::abs),
            Fn1::Square => map1(&mut regs[top - 1][..n], |v| v * v),
            Fn1::Relu => map1(&mut regs[top - 1][..n], |v| v.max(0.0)),
            other => map1(&mut regs[top - 1][..n], |v| other.apply(v)),
        },
        Ins::Bin(op) => {
            let (lo, hi) = regs.split_at_mut(top - 1);
            let (a, b) = (&mut lo[top - 2][..n], &hi[0][..n]);
            match op {
                BinOp::Add => map2(a, b, |p, q| p + q),
                BinOp::Sub => map2(a, b, |p, q| p - q),
                BinOp::Mul => map2(a, b, |p, q| p * q),
                BinOp::Div => map2(a, b, |p, q| p / q),
                other => map2(a, b, |p, q| other.apply(p, q)),
            }
        }
        Ins::Max | Ins::Min => {
            let (lo, hi) = regs.split_at_mut(top - 1);
            let (a, b) = (&mut lo[top - 2][..n], &hi[0][..n]);
            if ins == Ins::Max {
                map2(a, b, f32::max);
            } else {
                map2(a, b, f32::min);
            }
        }
        Ins::Select => {
            let (lo, hi) = regs.split_at_mut(top - 2);
            let (then, els) = hi.split_at(1);
            let cond = &mut lo[top - 3][..n];
            for ((c, t), e) in cond.iter_mut().zip(&then[0][..n]).zip(&els[0][..n]) {
                *c = if truth(*c) { *t } else { *e };
            }
        }
    }
    let (pops, pushes) = ins.arity();
    *sp = top - pops + pushes;
}

fn map1(a: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in a {
        *v = f(*v);
    }
}

fn map2(a: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (p, &q) in a.iter_mut().zip(b) {
        *p = f(*p, q);
    }
}

fn run(code: &[Ins], x: f32, stack: &mut Vec<f32>) -> f32 {
    for ins in code {
        match *ins {
            Ins::Const(c) => stack.push(c),
            Ins::X => stack.push(x),
            Ins::Neg => {
                if let Some(v) = stack.last_mut() {
                    *v = -*v;
                }
            }
            Ins::Not => {
                if let Some(v) = stack.last_mut() {
                    *v = flag(!truth(*v));
                }
            }
            Ins::Fn1(f) => {
                if let Some(v) = stack.last_mut() {
                    *v = f.apply(*v);
                }
            }
            Ins::Bin(_) | Ins::Max | Ins::Min => {
                let b = stack.pop().unwrap_or(f32::NAN);
                let a = stack.pop().unwrap_or(f32::NAN);
                stack.push(match *ins {
                    Ins::Max => a.max(b),
                    Ins::Min => a.min(b),
                    Ins::Bin(op) => op.apply(a, b),
                    _ => f32::NAN,
                });
            }
            Ins::Select => {
                let els = stack.pop().unwrap_or(f32::NAN);
                let then = stack.pop().unwrap_or(f32::NAN);
                let cond = stack.pop().unwrap_or(f32::NAN);
                stack.push(if truth(cond) { then } else { els });
            }
        }
    }
    stack.pop().unwrap_or(f32::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of instruction, in programs of depth 1 to 3.
    fn programs() -> Vec<Vec<Ins>> {
        use BinOp::*;
        let mut out = Vec::new();
        for op in [
            Add, Sub, Mul, Div, Rem, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or,
        ] {
            out.push(vec![Ins::X, Ins::Const(0.75), Ins::Bin(op)]);
            out.push(vec![Ins::Const(-2.0), Ins::X, Ins::Bin(op)]);
        }
        for f in [
            Fn1::Exp,
            Fn1::Log,
            Fn1::Log1p,
            Fn1::Sqrt,
            Fn1::Rsqrt,
            Fn1::Abs,
            Fn1::Square,
            Fn1::Tanh,
            Fn1::Sigmoid,
            Fn1::Relu,
        ] {
            out.push(vec![Ins::X, Ins::Fn1(f)]);
        }
        out.push(vec![Ins::X, Ins::Neg]);
        out.push(vec![Ins::X, Ins::Not]);
        out.push(vec![Ins::X, Ins::Const(0.0), Ins::Max]);
        out.push(vec![Ins::X, Ins::Const(0.0), Ins::Min]);
        // (x - 0.5) / 0.25, and if x > 1 { log1p(x) } else { -x * x }.
        out.push(vec![
            Ins::X,
            Ins::Const(0.5),
            Ins::Bin(Sub),
            Ins::Const(0.25),
            Ins::Bin(Div),
        ]);
        out.push(vec![
            Ins::X,
            Ins::Const(1.0),
            Ins::Bin(Gt),
            Ins::X,
            Ins::Fn1(Fn1::Log1p),
            Ins::X,
            Ins::Neg,
            Ins::X,
            Ins::Bin(Mul),
            Ins::Select,
        ]);
        out
    }

    #[test]
    fn blocks_give_the_same_bits_as_the_scalar_machine() {
        // 1,000 values (not a multiple of the block), with the awkward ones.
        let mut data: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 37.0).collect();
        data[3] = f32::NAN;
        data[300] = f32::INFINITY;
        data[301] = f32::NEG_INFINITY;
        data[700] = 0.0;
        data[701] = -0.0;
        for code in programs() {
            let e = Elementwise::new(Program::new(code.clone()).unwrap());
            let mut got = data.clone();
            e.apply(&mut got);
            for (i, (&g, &x)) in got.iter().zip(&data).enumerate() {
                let want = e.eval(x);
                assert_eq!(
                    g.to_bits(),
                    want.to_bits(),
                    "{code:?} at {i} (x = {x}): {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn malformed_programs_are_refused() {
        assert!(Program::new(vec![Ins::X, Ins::Bin(BinOp::Add)]).is_err());
        assert!(Program::new(vec![Ins::X, Ins::X]).is_err());
        assert!(Program::new(vec![]).is_err());
    }
}
