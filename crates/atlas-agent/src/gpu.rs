//! GPU figures behind a trait, so the sampling code is the same for NVML and for the fake
//! source the tests use. Only the devices the job was given are read
//! (`CUDA_VISIBLE_DEVICES` / `NVIDIA_VISIBLE_DEVICES`), never every GPU on the node.

use atlas_spec::record::GpuSample;

/// Figures of one device, as a driver reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceReading {
    pub sm_percent: u32,
    pub memory_used_bytes: u64,
    pub power_milliwatts: u32,
    pub energy_millijoules: Option<u64>,
    /// (pid, GPU memory bytes) of the processes on the device.
    pub processes: Vec<(u32, u64)>,
}

/// A source of GPU figures: NVML on a GPU machine, a fake in tests.
pub trait GpuDevices {
    /// Number of devices the driver sees.
    fn count(&mut self) -> u32;
    /// Index, UUID of a device.
    fn uuid(&mut self, index: u32) -> Option<String>;
    /// Current figures of a device.
    fn read(&mut self, index: u32) -> Option<DeviceReading>;
}

/// The devices the job may use: all when no variable restricts them; indices or UUIDs from
/// `CUDA_VISIBLE_DEVICES`, else `NVIDIA_VISIBLE_DEVICES` (`all` = all, `none`/empty = none).
pub fn visible_devices(
    devices: &mut dyn GpuDevices,
    cuda: Option<&str>,
    nvidia: Option<&str>,
) -> Vec<u32> {
    let count = devices.count();
    let Some(list) = cuda.or(nvidia) else {
        return (0..count).collect();
    };
    let list = list.trim();
    if list == "all" {
        return (0..count).collect();
    }
    if list.is_empty() || list == "none" || list == "void" {
        return Vec::new();
    }
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim) {
        let index = match item.parse::<u32>() {
            Ok(i) if i < count => Some(i),
            Ok(_) => None,
            Err(_) => (0..count).find(|&i| {
                devices
                    .uuid(i)
                    .is_some_and(|u| u == item || u.starts_with(item))
            }),
        };
        if let Some(i) = index.filter(|i| !out.contains(i)) {
            out.push(i);
        }
    }
    out
}

/// One sample of the visible devices; `job_pids` picks the job's share of device memory.
pub fn sample(devices: &mut dyn GpuDevices, visible: &[u32], job_pids: &[i32]) -> Vec<GpuSample> {
    visible
        .iter()
        .enumerate()
        .filter_map(|(position, &index)| {
            let r = devices.read(index)?;
            let job: u64 = r
                .processes
                .iter()
                .filter(|(pid, _)| job_pids.contains(&(*pid as i32)))
                .map(|(_, bytes)| bytes)
                .sum();
            Some(GpuSample {
                index: position as u32,
                sm_percent: r.sm_percent,
                memory_used_bytes: r.memory_used_bytes,
                job_memory_bytes: Some(job),
                power_milliwatts: r.power_milliwatts,
                energy_millijoules: r.energy_millijoules,
            })
        })
        .collect()
}

/// No GPU driver on this machine.
pub struct NoGpus;

impl GpuDevices for NoGpus {
    fn count(&mut self) -> u32 {
        0
    }
    fn uuid(&mut self, _: u32) -> Option<String> {
        None
    }
    fn read(&mut self, _: u32) -> Option<DeviceReading> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<(String, DeviceReading)>);

    impl GpuDevices for Fake {
        fn count(&mut self) -> u32 {
            self.0.len() as u32
        }
        fn uuid(&mut self, i: u32) -> Option<String> {
            self.0.get(i as usize).map(|d| d.0.clone())
        }
        fn read(&mut self, i: u32) -> Option<DeviceReading> {
            self.0.get(i as usize).map(|d| d.1.clone())
        }
    }

    fn four() -> Fake {
        Fake(
            (0..4)
                .map(|i| {
                    let reading = DeviceReading {
                        sm_percent: 10 * i,
                        memory_used_bytes: 1000 * u64::from(i),
                        power_milliwatts: 50_000,
                        energy_millijoules: Some(7),
                        processes: vec![(100 + i, 300), (999, 700)],
                    };
                    (format!("GPU-{i}aaa"), reading)
                })
                .collect(),
        )
    }

    #[test]
    fn only_the_given_devices_are_sampled() {
        let mut f = four();
        assert_eq!(visible_devices(&mut f, Some("2,0"), None), [2, 0]);
        assert_eq!(visible_devices(&mut f, None, Some("GPU-3")), [3]);
        assert_eq!(visible_devices(&mut f, None, Some("all")), [0, 1, 2, 3]);
        assert_eq!(
            visible_devices(&mut f, Some(""), Some("all")),
            Vec::<u32>::new()
        );
        assert_eq!(visible_devices(&mut f, Some("7"), None), Vec::<u32>::new());
    }

    #[test]
    fn job_memory_counts_only_the_jobs_processes() {
        let mut f = four();
        let samples = sample(&mut f, &[2], &[102]);
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].index, samples[0].sm_percent), (0, 20));
        assert_eq!(samples[0].job_memory_bytes, Some(300));
    }
}
