"""Well-format data: atomic writes, HDF5 writer and reader, statistics, dataset generation.

Our generated data uses exactly The Well's HDF5 layout, so one reader serves real Well
files and ours, and the_well's `WellDataset` reads our datasets.
"""

from engine.data.atomic import atomic_open, atomic_path
from engine.data.generate import generate_dataset
from engine.data.stats import compute_stats, read_stats, write_stats
from engine.data.well_reader import WellArrays, find_well_files, load_array, open_well
from engine.data.well_writer import write_well_file

__all__ = [
    "WellArrays",
    "atomic_open",
    "atomic_path",
    "compute_stats",
    "find_well_files",
    "generate_dataset",
    "load_array",
    "open_well",
    "read_stats",
    "write_stats",
    "write_well_file",
]
