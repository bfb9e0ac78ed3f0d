//! The price sheet: cloud prices per vCPU-hour, GiB-hour and GPU-hour (OpenCost's model) and an
//! on-premises TCO model, so that every run has a cost. The default sheet ships with the binary
//! (`prices/default.toml`, with its sources and date); users add or replace entries by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The sheet that ships with Atlas.
pub const DEFAULT_SHEET: &str = include_str!("../prices/default.toml");

/// A cloud price: what a run asks for, per hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    pub vcpu_hour: f64,
    pub gib_hour: f64,
    #[serde(default)]
    pub gpu_hour: f64,
    pub source: String,
}

/// An on-premises node's total cost of ownership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnPrem {
    pub purchase: f64,
    pub years: f64,
    pub watts: f64,
    pub kwh_price: f64,
    pub overhead_per_year: f64,
    pub utilisation: f64,
    pub cores: u32,
    pub memory_gib: f64,
    #[serde(default)]
    pub gpus: u32,
    /// What the centre charges its users per core-hour (total cost of service), if it does.
    #[serde(default)]
    pub charge_core_hour: Option<f64>,
    pub source: String,
}

/// One entry of the sheet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum Price {
    Cloud(Cloud),
    OnPrem(OnPrem),
}

/// What a run used, for pricing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub hours: f64,
    pub cores: f64,
    pub memory_gib: f64,
    pub gpus: f64,
}

/// A run's cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// Cloud price, or the owner's cost (TCO share) on premises.
    pub cost: f64,
    /// What the user is charged on premises (TCS), when the sheet says.
    pub charged: Option<f64>,
}

impl OnPrem {
    /// The cost of one node-hour: amortised purchase and overhead over the hours used, plus power.
    pub fn node_hour(&self) -> f64 {
        (self.purchase / self.years + self.overhead_per_year) / (8760.0 * self.utilisation)
            + self.watts / 1000.0 * self.kwh_price
    }
}

impl Price {
    /// What `usage` costs at this price.
    pub fn cost(&self, usage: Usage) -> Cost {
        match self {
            Price::Cloud(c) => Cost {
                cost: usage.hours
                    * (usage.cores * c.vcpu_hour
                        + usage.memory_gib * c.gib_hour
                        + usage.gpus * c.gpu_hour),
                charged: None,
            },
            Price::OnPrem(o) => {
                let mut share = (usage.cores / f64::from(o.cores.max(1)))
                    .max(usage.memory_gib / o.memory_gib.max(f64::MIN_POSITIVE));
                if o.gpus > 0 {
                    share = share.max(usage.gpus / f64::from(o.gpus));
                }
                Cost {
                    cost: o.node_hour() * usage.hours * share.min(1.0),
                    charged: o.charge_core_hour.map(|c| c * usage.cores * usage.hours),
                }
            }
        }
    }

    /// The rates in a line (`0.0316 per vCPU-hour, 0.0042 per GiB-hour, 0.95 per GPU-hour`;
    /// on premises the node-hour and how it is made), for the report to show what it used.
    pub fn rates(&self, currency: &str) -> String {
        match self {
            Price::Cloud(c) => {
                let mut rates = format!(
                    "{} {currency} per vCPU-hour, {} {currency} per GiB-hour",
                    c.vcpu_hour, c.gib_hour
                );
                if c.gpu_hour > 0.0 {
                    rates += &format!(", {} {currency} per GPU-hour", c.gpu_hour);
                }
                rates
            }
            Price::OnPrem(o) => format!(
                "{:.4} {currency} per node-hour ({} {currency} over {} years, {} W at {} {currency}/kWh, {:.0} % used; {} cores, {} GiB{}), shared by the larger of the cores and memory asked",
                o.node_hour(),
                o.purchase,
                o.years,
                o.watts,
                o.kwh_price,
                o.utilisation * 100.0,
                o.cores,
                o.memory_gib,
                if o.gpus > 0 { format!(", {} GPUs", o.gpus) } else { String::new() }
            ),
        }
    }

    /// Where the price comes from.
    pub fn source(&self) -> &str {
        match self {
            Price::Cloud(c) => &c.source,
            Price::OnPrem(o) => &o.source,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sheet {
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    cloud: BTreeMap<String, Cloud>,
    #[serde(default)]
    onprem: BTreeMap<String, OnPrem>,
}

/// Why a price sheet cannot be used; each names the file, and the line where TOML knows it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceSheetError {
    /// Not TOML, or not a sheet's shape (an unknown key, a number given as text).
    #[error("{}:{}{message}", file.display(), place.map(|(l, c)| format!("{l}:{c}: ")).unwrap_or_default())]
    Syntax {
        file: PathBuf,
        /// 1-based line and column, when the parser points at one.
        place: Option<(usize, usize)>,
        message: String,
    },
    /// A price that is negative, infinite or not a number.
    #[error("{}: `{name}`: prices must be finite and not negative", file.display())]
    Negative { file: PathBuf, name: String },
    /// An on-premises entry whose utilisation or years make the model meaningless.
    #[error("{}: onprem.{name}: utilisation must be in (0, 1] and years above 0", file.display())]
    OnPremModel { file: PathBuf, name: String },
}

/// The entries by name, with the sheet's date and currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceSheet {
    pub date: String,
    pub currency: String,
    pub entries: BTreeMap<String, Price>,
}

impl PriceSheet {
    /// The default sheet, with `extra` (file name and text) read over it.
    pub fn load(extra: Option<(&Path, &str)>) -> Result<Self, PriceSheetError> {
        let mut sheet = PriceSheet {
            date: String::new(),
            currency: "USD".into(),
            entries: BTreeMap::new(),
        };
        sheet.add(Path::new("default price sheet"), DEFAULT_SHEET)?;
        if let Some((file, text)) = extra {
            sheet.add(file, text)?;
        }
        Ok(sheet)
    }

    fn add(&mut self, file: &Path, text: &str) -> Result<(), PriceSheetError> {
        let parsed: Sheet = toml::from_str(text).map_err(|e| PriceSheetError::Syntax {
            file: file.to_path_buf(),
            place: e.span().map(|span| line_column(text, span.start)),
            message: e.message().trim().to_string(),
        })?;
        if let Some(date) = parsed.date {
            self.date = date;
        }
        if let Some(currency) = parsed.currency {
            self.currency = currency;
        }
        for (name, entry) in parsed.cloud {
            check(
                file,
                &name,
                &[entry.vcpu_hour, entry.gib_hour, entry.gpu_hour],
            )?;
            self.entries.insert(name, Price::Cloud(entry));
        }
        for (name, entry) in parsed.onprem {
            check(
                file,
                &name,
                &[
                    entry.purchase,
                    entry.years,
                    entry.watts,
                    entry.kwh_price,
                    entry.overhead_per_year,
                    entry.memory_gib,
                ],
            )?;
            if !(entry.utilisation > 0.0 && entry.utilisation <= 1.0) || entry.years <= 0.0 {
                return Err(PriceSheetError::OnPremModel {
                    file: file.to_path_buf(),
                    name,
                });
            }
            self.entries.insert(name, Price::OnPrem(entry));
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn check(file: &Path, name: &str, numbers: &[f64]) -> Result<(), PriceSheetError> {
    if numbers.iter().all(|n| n.is_finite() && *n >= 0.0) {
        Ok(())
    } else {
        Err(PriceSheetError::Negative {
            file: file.to_path_buf(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sheet_loads_with_its_sources() {
        let sheet = PriceSheet::load(None).unwrap();
        assert_eq!(sheet.date, "2026-11-01");
        assert!(sheet.entries.contains_key("opencost-default"));
        assert!(sheet.entries.values().all(|p| !p.source().is_empty()));
    }

    #[test]
    fn costs_by_hand() {
        let cloud = Price::Cloud(Cloud {
            vcpu_hour: 0.04,
            gib_hour: 0.005,
            gpu_hour: 1.0,
            source: "t".into(),
        });
        let usage = Usage {
            hours: 0.5,
            cores: 2.0,
            memory_gib: 4.0,
            gpus: 1.0,
        };
        // 0.5 * (2 * 0.04 + 4 * 0.005 + 1 * 1.0) = 0.55
        assert!((cloud.cost(usage).cost - 0.55).abs() < 1e-12);
        let node = OnPrem {
            purchase: 8760.0,
            years: 1.0,
            watts: 1000.0,
            kwh_price: 0.1,
            overhead_per_year: 0.0,
            utilisation: 1.0,
            cores: 4,
            memory_gib: 100.0,
            gpus: 0,
            charge_core_hour: Some(0.02),
            source: "t".into(),
        };
        // node-hour = 8760 / 8760 + 1 kW * 0.1 = 1.1; share = max(2/4, 4/100) = 0.5
        assert!((node.node_hour() - 1.1).abs() < 1e-12);
        let cost = Price::OnPrem(node).cost(usage);
        assert!((cost.cost - 1.1 * 0.5 * 0.5).abs() < 1e-12);
        assert!((cost.charged.unwrap() - 0.02 * 2.0 * 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_bad_sheet_names_file_line_and_what_is_wrong() {
        let err = PriceSheet::load(Some((
            Path::new("prices.toml"),
            "[cloud.x]\nvcpu_hour = \"cheap\"\ngib_hour = 0.1\nsource = \"s\"\n",
        )))
        .unwrap_err();
        assert!(
            matches!(
                err,
                PriceSheetError::Syntax {
                    place: Some((2, 13)),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("prices.toml:2:13: "), "{err}");
        let err = PriceSheet::load(Some((
            Path::new("prices.toml"),
            "[cloud.x]\nvcpu_hour = -1.0\ngib_hour = 0.1\nsource = \"s\"\n",
        )))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "prices.toml: `x`: prices must be finite and not negative"
        );
    }
}
