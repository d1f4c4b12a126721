//! Starting from another run's weights: a few-shot fit of new sessions.
//!
//! A foundation model of the brain meets new animals and sessions after it
//! is trained. Their neurons are new, so their per-session tables (unit
//! embeddings, read-out weights) must be learned, but what the model knows
//! about neural dynamics is in the shared weights. [`TorchBackend::load_shared`]
//! copies every shared weight from a checkpoint of a run of the same model,
//! leaving the per-session tables as initialised and the optimiser fresh;
//! [`TorchBackend::freeze_shared`] then keeps the shared weights fixed, so
//! training fits only the new sessions' tables (as POYO's and NDT2's
//! unit-identification fine-tuning does).

use std::collections::BTreeMap;

use enigma::base::host::HostTensor;
use enigma::diagnostics::{Error, ErrorKind};

use crate::{op_err, part_of, upload, TorchBackend};

impl TorchBackend {
    /// Copies the weights of every shared parameter copy from `state` and
    /// returns how many: each must be there with the same shape. The
    /// per-session tables and the optimiser's moments are left as they
    /// are.
    pub(crate) fn load_shared_weights(
        &mut self,
        state: &BTreeMap<String, HostTensor>,
    ) -> Result<usize, Error> {
        let mismatch = |m: String| Error::new(ErrorKind::Mismatch, m);
        if self.slots.iter().any(|s| s.own.is_some()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "starting from another run's weights under ZeRO is not supported yet; train the new sessions without `parallel.zero`",
            ));
        }
        let device = self.device;
        let mut loaded = 0;
        tch::no_grad(|| -> Result<(), Error> {
            for s in self.slots.iter_mut().filter(|s| s.session.is_none()) {
                let want: Vec<usize> = s.whole.iter().map(|&d| d.max(0) as usize).collect();
                let h = state.get(&s.name).ok_or_else(|| {
                    mismatch(format!(
                        "the run to start from has no `{}`: it is not a run of this model",
                        s.name
                    ))
                })?;
                if h.shape != want {
                    return Err(mismatch(format!(
                        "`{}` is {:?} in the run to start from but {:?} here",
                        s.name, h.shape, want
                    )));
                }
                let t = upload(h, device)
                    .and_then(|t| part_of(&t, &s.ranges))
                    .map_err(|e| op_err(e, format!("loading `{}`", s.name)))?;
                s.value
                    .f_copy_(&t)
                    .map_err(|e| op_err(e, format!("loading `{}`", s.name)))?;
                loaded += 1;
            }
            Ok(())
        })?;
        Ok(loaded)
    }
}
