//! The agent's GPU path end to end with a fake device source (these machines have no GPU):
//! the run says what it saw, and every job sample carries the devices' figures.

use std::time::Duration;

use atlas_agent::gpu::{DeviceReading, GpuDevices};
use atlas_agent::spool::read_spool;
use atlas_agent::AgentConfig;
use atlas_spec::record::RecordBody;

struct FakeGpus {
    reads: u32,
}

impl GpuDevices for FakeGpus {
    fn count(&mut self) -> u32 {
        2
    }
    fn uuid(&mut self, index: u32) -> Option<String> {
        Some(format!("GPU-fake-{index}"))
    }
    fn read(&mut self, index: u32) -> Option<DeviceReading> {
        self.reads += 1;
        Some(DeviceReading {
            sm_percent: 50 + index,
            memory_used_bytes: 1 << 30,
            power_milliwatts: 300_000,
            energy_millijoules: Some(u64::from(self.reads) * 1000),
            processes: vec![],
        })
    }
}

#[test]
fn samples_carry_the_visible_gpus() {
    // Each test runs in its own process (nextest), before any other thread: safe to clear.
    std::env::remove_var("CUDA_VISIBLE_DEVICES");
    std::env::remove_var("NVIDIA_VISIBLE_DEVICES");
    let dir = std::env::temp_dir().join(format!("atlas-gpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let yaml = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: gpu}\nspec:\n  phases:\n  - {name: train, run: 'sleep 0.5'}\n";
    let workflow = atlas_spec::parse_workflow("gpu.yaml", yaml).unwrap();
    let config = AgentConfig {
        run_id: "r-gpu".into(),
        run_dir: dir.clone(),
        interval: Duration::from_millis(100),
        grace: Duration::from_secs(1),
        passthrough: false,
        records_to_stdout: false,
        keep_checkpoint: false,
        freeze_on_stop: false,
        warnings: atlas_agent::ignore_warnings(),
    };
    let outcome = atlas_agent::run(&workflow, &config, Box::new(FakeGpus { reads: 0 })).unwrap();
    assert_eq!(outcome.cause, None);
    let records = read_spool(&dir.join("spool.jsonl"), 0).unwrap().records;
    let gpu_line = records.iter().find_map(|r| match &r.body {
        RecordBody::RunStart { gpu, .. } => Some(gpu.clone()),
        _ => None,
    });
    // With neither variable set, every device is the job's.
    assert_eq!(gpu_line.as_deref(), Some("2 of 2 devices"));
    let samples: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Sample { gpus, .. } => Some(gpus.clone()),
            _ => None,
        })
        .collect();
    assert!(samples.len() >= 3, "{} samples", samples.len());
    assert!(samples
        .iter()
        .all(|g| g.len() == 2 && g[1].sm_percent == 51));
    std::fs::remove_dir_all(&dir).unwrap();
}
