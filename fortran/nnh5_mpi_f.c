/*
 * fortran/nnh5_mpi_f.c - the C side of the Fortran module nnh5_mpi
 * (nnh5_mpi.f90): Fortran passes MPI communicators as handles (MPI_Fint:
 * an integer from `use mpi`, comm%MPI_VAL from `use mpi_f08`); only C can
 * turn one into an MPI_Comm (MPI_Comm_f2c), so each collective call the
 * module offers goes through one of these.
 */
#include <nnh5/mpi.h>

/* Exported for the Fortran module's bind(c) interfaces only. */
#define NNH5_F_API __attribute__((visibility("default")))

NNH5_F_API int nnh5_mpi_f_load_model(nnh5_model **out, MPI_Fint comm, int root, const char *path);
NNH5_F_API int nnh5_mpi_f_load_state_dict(nnh5_dict **out, MPI_Fint comm, int root,
					  const char *path, const char *name);

int nnh5_mpi_f_load_model(nnh5_model **out, MPI_Fint comm, int root, const char *path)
{
	return nnh5_mpi_load_model(out, MPI_Comm_f2c(comm), root, path);
}

int nnh5_mpi_f_load_state_dict(nnh5_dict **out, MPI_Fint comm, int root, const char *path,
			       const char *name)
{
	return nnh5_mpi_load_state_dict(out, MPI_Comm_f2c(comm), root, path, name);
}
