//! NVIDIA GPUs through NVML, loaded at run time (`libnvidia-ml.so` via nvml-wrapper), so the
//! same binary runs on machines without a GPU or driver: there [`NvmlDevices::load`] is `None`.
//! Utilisation is NVML's "GPU utilisation" (time a kernel was running); per-SM activity needs
//! DCGM, which a later source can add behind the same trait.

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

use crate::gpu::{DeviceReading, GpuDevices};

/// GPUs as NVML reports them.
pub struct NvmlDevices {
    nvml: Nvml,
}

impl NvmlDevices {
    /// Loads NVML; `None` when the library or a driver is missing.
    pub fn load() -> Option<Self> {
        Nvml::init().ok().map(|nvml| NvmlDevices { nvml })
    }
}

impl GpuDevices for NvmlDevices {
    fn count(&mut self) -> u32 {
        self.nvml.device_count().unwrap_or(0)
    }

    fn uuid(&mut self, index: u32) -> Option<String> {
        self.nvml.device_by_index(index).ok()?.uuid().ok()
    }

    fn read(&mut self, index: u32) -> Option<DeviceReading> {
        let device = self.nvml.device_by_index(index).ok()?;
        let processes = device
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let bytes = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => b,
                    UsedGpuMemory::Unavailable => 0,
                };
                (p.pid, bytes)
            })
            .collect();
        Some(DeviceReading {
            sm_percent: device.utilization_rates().map_or(0, |u| u.gpu),
            memory_used_bytes: device.memory_info().map_or(0, |m| m.used),
            power_milliwatts: device.power_usage().unwrap_or(0),
            energy_millijoules: device.total_energy_consumption().ok(),
            processes,
        })
    }
}
