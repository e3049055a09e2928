"""Atlas region and descriptor-channel names (Desikan-Killiany 68, Destrieux 148; FreeSurfer channels)."""

DK_REGIONS_PER_HEMISPHERE = (
    "bankssts", "caudalanteriorcingulate", "caudalmiddlefrontal", "cuneus", "entorhinal", "fusiform",
    "inferiorparietal", "inferiortemporal", "isthmuscingulate", "lateraloccipital", "lateralorbitofrontal",
    "lingual", "medialorbitofrontal", "middletemporal", "parahippocampal", "paracentral", "parsopercularis",
    "parsorbitalis", "parstriangularis", "pericalcarine", "postcentral", "posteriorcingulate", "precentral",
    "precuneus", "rostralanteriorcingulate", "rostralmiddlefrontal", "superiorfrontal", "superiorparietal",
    "superiortemporal", "supramarginal", "frontalpole", "temporalpole", "transversetemporal", "insula",
)
DK_REGIONS = tuple(f"{h}-{r}" for h in ("lh", "rh") for r in DK_REGIONS_PER_HEMISPHERE)
ATLAS_SIZES = {"desikan": 68, "destrieux": 148}

# The 7 FreeSurfer channels of OpenBHB's ROI tables (order as written by our generator; readers select by name).
ROI_CHANNELS = (
    "surface_area_mm^2", "gray_matter_volume_mm^3", "average_thickness_mm", "thickness_stddev_mm",
    "integrated_rectified_mean_curvature_mm^-1", "integrated_rectified_gaussian_curvature_mm^-2",
    "intrinsic_curvature_index",
)
# Short descriptor names used across anatlearn -> channel names.
DESCRIPTOR_CHANNELS = {"CT": "average_thickness_mm", "GMV": "gray_matter_volume_mm^3", "SA": "surface_area_mm^2"}
# FreeSurfer aparc.stats columns for the same descriptors.
APARC_COLUMNS = {"CT": "ThickAvg", "GMV": "GrayVol", "SA": "SurfArea"}
