//! Building the stages: in plan order, one after another — or, in a build for several
//! platforms, each platform's own stages at the same time.
//!
//! A build for several platforms has stages every target shares (built first, in plan order)
//! and, per target, stages of its own that depend only on the shared ones and on each other
//! (see `dockerfile/platforms.rs`). Each target's own stages are a *lane*, built on a thread
//! of its own: an arm64 RUN crawling under QEMU then does not hold the amd64 stages up. A lane
//! works on forks of the build's bookkeeping — the stages built so far (their roots opened
//! again read-only), the layer cache's and the recorded contents' — and the build takes
//! them back when every lane is done. The blob store, the registry client, the memos of
//! resolved images and the emitter are shared: a base blob or a context file is fetched or
//! read once whatever the number of lanes.
//!
//! Lanes run only where nothing else needs the build to be sequential: chroot isolation (in
//! container isolation every stage's root is `/` itself) and a controller that never pauses
//! ([`Controller::steps_concurrently`]); the debugger steps through platforms one after the
//! other.

use crate::engine::build::Build;
use crate::engine::controller::Continue;
use crate::engine::error::BuildError;
use crate::engine::push_check::PushCheck;
use crate::engine::shared::Shared;
use crate::engine::stage::build_stage;
use crate::sandbox::Isolation;

impl Build<'_> {
    /// Builds every stage of the plan (see the module's comment for when lanes run).
    pub(crate) fn build_stages(&mut self) -> Result<(), BuildError> {
        let plan = &self.ctx.plan;
        let concurrent = plan.is_multi_platform()
            && self.ctx.opts.run.isolation != Isolation::Container
            && self.controller.steps_concurrently();
        if !concurrent {
            return self.build_in_order(&plan.order.clone());
        }
        let (shared, lanes) = lanes(plan);
        self.build_in_order(&shared)?;
        self.build_lanes(lanes)
    }

    fn build_in_order(&mut self, order: &[usize]) -> Result<(), BuildError> {
        for (pos, &idx) in order.iter().enumerate() {
            let built = build_stage(&mut self.shared(), idx)?;
            if built.root.is_none() {
                self.ctx.prefetch_unneeded(idx, &order[pos + 1..]);
            }
            self.stages.finish(idx, built);
            self.stages.release_after(&self.ctx, idx);
        }
        Ok(())
    }

    fn build_lanes(&mut self, lanes: Vec<Vec<usize>>) -> Result<(), BuildError> {
        let ctx = &self.ctx;
        let mut forks = Vec::with_capacity(lanes.len());
        for _ in &lanes {
            forks.push((
                self.stages.fork()?,
                self.cache.as_ref().map(|c| c.fork()),
                self.contents.as_ref().map(|c| c.fork()),
            ));
        }
        let results: Vec<_> = std::thread::scope(|scope| {
            let running: Vec<_> = lanes
                .iter()
                .zip(forks)
                .map(|(lane, (mut stages, mut cache, mut contents))| {
                    scope.spawn(move || {
                        // The build's controller never pauses here (that is what lets lanes
                        // run); the push check is the build's own, finished at its end.
                        let mut controller = Continue;
                        let mut push_check = PushCheck::default();
                        let mut result = Ok(());
                        for &idx in lane {
                            let mut s = Shared {
                                ctx,
                                stages: &mut stages,
                                cache: cache.as_mut(),
                                contents: contents.as_mut(),
                                controller: &mut controller,
                                push_check: &mut push_check,
                            };
                            match build_stage(&mut s, idx) {
                                Ok(built) => {
                                    stages.finish(idx, built);
                                    stages.release_after(ctx, idx);
                                }
                                Err(e) => {
                                    result = Err(e);
                                    break;
                                }
                            }
                        }
                        (result, stages, cache, contents)
                    })
                })
                .collect();
            running.into_iter().map(|h| h.join()).collect()
        });
        let mut first_error = None;
        for (lane, joined) in lanes.iter().zip(results) {
            let (result, stages, cache, contents) = match joined {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            // What a lane did is taken back even when a lane failed: its cache writes finish
            // and its roots are deleted with the build's.
            self.stages.absorb(stages, lane);
            if let (Some(c), Some(l)) = (self.cache.as_mut(), cache) {
                c.absorb(l);
            }
            if let (Some(c), Some(l)) = (self.contents.as_mut(), contents) {
                c.absorb(l);
            }
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The plan's stages in plan order, split into those several targets share and, per target,
/// its own (in plan order).
fn lanes(plan: &crate::dockerfile::Plan) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut shared = Vec::new();
    let mut lanes = vec![Vec::new(); plan.platforms.len()];
    for &idx in &plan.order {
        match plan.stages[idx].targets.as_slice() {
            [only] => lanes[*only].push(idx),
            _ => shared.push(idx),
        }
    }
    (shared, lanes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{PlatformArgs, parse, plan_platforms};
    use crate::image::manifest::Platform;

    #[test]
    fn shared_stages_come_first_and_each_target_has_its_own_lane() {
        let df = parse(
            std::path::Path::new("Dockerfile"),
            "FROM --platform=$BUILDPLATFORM busybox AS tools\nRUN make\n\
             FROM busybox AS rt\nFROM rt\nCOPY --from=tools /out /\n",
        )
        .unwrap();
        let build = Platform::parse("linux/amd64").unwrap();
        let platforms: Vec<PlatformArgs> = ["linux/amd64", "linux/arm64"]
            .iter()
            .map(|t| PlatformArgs { target: Platform::parse(t).unwrap(), build: build.clone() })
            .collect();
        let plan = plan_platforms(&df, None, &Default::default(), &platforms).unwrap();
        let (shared, lanes) = lanes(&plan);
        assert_eq!(shared, vec![0]);
        assert_eq!(lanes, vec![vec![1, 2], vec![3, 4]]);
    }
}
